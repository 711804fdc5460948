"""PyTorch references for lib/functional/elementwise.c."""
import torch

from torch_ops import op


@op("add")
def add(x, p): return x[0] + x[1]


@op("sub")
def sub(x, p): return x[0] - x[1]


@op("mul")
def mul(x, p): return x[0] * x[1]


@op("div")
def div(x, p): return x[0] / x[1]


@op("maximum")
def maximum(x, p): return torch.maximum(x[0], x[1])


@op("minimum")
def minimum(x, p): return torch.minimum(x[0], x[1])


@op("neg")
def neg(x, p): return torch.neg(x[0])


@op("exp")
def exp(x, p): return torch.exp(x[0])


@op("log")
def log(x, p): return torch.log(x[0])


@op("sqrt")
def sqrt(x, p): return torch.sqrt(x[0])


@op("abs")
def abs_(x, p): return torch.abs(x[0])


@op("pow")
def pow_(x, p): return torch.pow(x[0], p["exponent"])


@op("clamp")
def clamp(x, p): return torch.clamp(x[0], min=p["lo"], max=p["hi"])


@op("add_scalar")
def add_scalar(x, p): return x[0] + p["s"]


@op("mul_scalar")
def mul_scalar(x, p): return x[0] * p["s"]
