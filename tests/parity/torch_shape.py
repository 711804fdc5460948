"""PyTorch references for shape ops (lib/functional/shape_ops.c)."""
import torch

from torch_ops import op


@op("reshape")
def reshape(x, p):
    return torch.reshape(x[0], p["shape"])


@op("flatten")
def flatten(x, p):
    return torch.flatten(x[0], p["start"], p["end"])


@op("permute")
def permute(x, p):
    return x[0].permute(p["perm"])


@op("transpose")
def transpose(x, p):
    return x[0].transpose(p["dim0"], p["dim1"])


@op("squeeze")
def squeeze(x, p):
    t = x[0]
    if not p["axes"]:
        return t.squeeze()
    # torch 1.13 squeezes one dim per call: go from the last so indices stay valid.
    for a in sorted((a % t.dim() for a in p["axes"]), reverse=True):
        t = t.squeeze(a)
    return t


@op("expand_dims")
def expand_dims(x, p):
    return x[0].unsqueeze(p["axis"])


@op("concat")
def concat(x, p):
    return torch.cat(x, dim=p["axis"])


@op("broadcast_to")
def broadcast_to(x, p):
    return torch.broadcast_to(x[0], p["shape"])


@op("diag")
def diag(x, p):
    return torch.diag(x[0])
