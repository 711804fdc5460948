"""PyTorch references for losses (lib/functional/loss.c)."""
import torch.nn.functional as F

from torch_ops import op


@op("cross_entropy")
def cross_entropy(x, p):
    return F.cross_entropy(x[0], x[1], reduction=p["reduction"],
                           label_smoothing=p["label_smoothing"])


@op("nll_loss")
def nll_loss(x, p):
    return F.nll_loss(x[0], x[1], reduction=p["reduction"])


@op("mse_loss")
def mse_loss(x, p):
    return F.mse_loss(x[0], x[1], reduction=p["reduction"])


@op("l1_loss")
def l1_loss(x, p):
    return F.l1_loss(x[0], x[1], reduction=p["reduction"])


@op("bce_with_logits")
def bce_with_logits(x, p):
    return F.binary_cross_entropy_with_logits(x[0], x[1], reduction=p["reduction"])
