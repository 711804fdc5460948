"""PyTorch references for reductions (lib/functional/reduce.c)."""
import torch

from torch_ops import op


def dims(x, p):
    """The case's axes, or every dim when "axes" is null (traind's naxes == 0)."""
    axes = p.get("axes")
    return tuple(axes) if axes else tuple(range(x.dim()))


@op("sum")
def sum_(x, p):
    return torch.sum(x[0], dim=dims(x[0], p), keepdim=p["keepdims"])


@op("mean")
def mean(x, p):
    return torch.mean(x[0], dim=dims(x[0], p), keepdim=p["keepdims"])


@op("max")
def max_(x, p):
    return torch.amax(x[0], dim=dims(x[0], p), keepdim=p["keepdims"])


@op("min")
def min_(x, p):
    return torch.amin(x[0], dim=dims(x[0], p), keepdim=p["keepdims"])


@op("var")
def var(x, p):
    return torch.var(x[0], dim=dims(x[0], p), correction=p["correction"], keepdim=p["keepdims"])


@op("logsumexp")
def logsumexp(x, p):
    return torch.logsumexp(x[0], dim=dims(x[0], p), keepdim=p["keepdims"])


@op("argmax")
def argmax(x, p):
    return torch.argmax(x[0], dim=p["axis"], keepdim=p["keepdims"])
