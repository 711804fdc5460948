"""PyTorch references for normalisation ops (lib/functional/norm.c)."""
import torch
import torch.nn.functional as F

from torch_ops import op


def running_stats(channels):
    """The running statistics tests/cases/cases_norm.c makes (exact in float32)."""
    c = torch.arange(channels, dtype=torch.float64)
    return 0.125 * (c % 5 - 2), 0.5 + 0.25 * (c % 4)


@op("batch_norm")
def batch_norm(x, p):
    rm, rv = running_stats(x[0].shape[1]) if p["running"] else (None, None)
    # Without running statistics traind always normalises with the batch's,
    # which PyTorch does only with training=True.
    training = p["training"] or rm is None
    return F.batch_norm(x[0], rm, rv, x[1], x[2], training=training, momentum=p["momentum"],
                        eps=p["eps"])


@op("layer_norm")
def layer_norm(x, p):
    shape = x[0].shape[x[0].dim() - p["normalized_ndim"]:]
    return F.layer_norm(x[0], shape, x[1], x[2], eps=p["eps"])
