"""PyTorch references for linalg.c: matmul and linear."""
import torch
import torch.nn.functional as F

from torch_ops import op


@op("matmul")
def matmul(x, p):
    return torch.matmul(x[0], x[1])


@op("linear")
def linear(x, p):
    return F.linear(x[0], x[1], x[2])
