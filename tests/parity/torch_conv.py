"""PyTorch reference for conv.c: conv2d."""
import torch.nn.functional as F

from torch_ops import op


@op("conv2d")
def conv2d(x, p):
    return F.conv2d(x[0], x[1], x[2], stride=tuple(p["stride"]), padding=tuple(p["padding"]),
                    dilation=tuple(p["dilation"]), groups=p["groups"])
