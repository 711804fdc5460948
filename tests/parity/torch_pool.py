"""PyTorch references for pool.c: max, average and adaptive average pooling."""
import torch.nn.functional as F

from torch_ops import op


@op("max_pool2d")
def max_pool2d(x, p):
    return F.max_pool2d(x[0], tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]))


@op("avg_pool2d")
def avg_pool2d(x, p):
    return F.avg_pool2d(x[0], tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]),
                        ceil_mode=False, count_include_pad=True)


@op("adaptive_avg_pool2d")
def adaptive_avg_pool2d(x, p):
    return F.adaptive_avg_pool2d(x[0], tuple(p["output_size"]))
