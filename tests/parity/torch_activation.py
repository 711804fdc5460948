"""PyTorch references for lib/functional/activation.c."""
import torch
import torch.nn.functional as F

from torch_ops import op


@op("relu")
def relu(x, p): return torch.relu(x[0])


@op("leaky_relu")
def leaky_relu(x, p): return F.leaky_relu(x[0], p["negative_slope"])


@op("sigmoid")
def sigmoid(x, p): return torch.sigmoid(x[0])


@op("tanh")
def tanh(x, p): return torch.tanh(x[0])


@op("gelu")
def gelu(x, p): return F.gelu(x[0])


@op("silu")
def silu(x, p): return F.silu(x[0])


@op("softmax")
def softmax(x, p): return torch.softmax(x[0], p["axis"])


@op("log_softmax")
def log_softmax(x, p): return torch.log_softmax(x[0], p["axis"])
