"""specs: Module / OptimizerSpec protos for the test models, and their torch twins.

    spec = mlp_small()                      # a traind.v1.Module
    net = torch_model(spec)                 # the same architecture in torch.nn,
                                            # with the same state_dict keys
The twin is built from the proto itself (not written twice by hand), so a
checkpoint downloaded from traind loads into it with strict=True.
"""
from collections import OrderedDict

import daemon  # noqa: F401  (puts the generated stubs on sys.path)
from traind.v1 import trainer_pb2 as pb

# ---- module builders (keyword names are the proto's) -------------------------


def _mod(kind, name=None, **fields):
    m = pb.Module()
    if name is not None:
        m.name = name
    getattr(m, kind).SetInParent()
    for k, v in fields.items():
        field = getattr(getattr(m, kind), k)
        if hasattr(field, "extend"):
            field.extend(v)
        elif hasattr(v, "CopyFrom"):
            field.CopyFrom(v)
        else:
            setattr(getattr(m, kind), k, v)
    return m


def seq(*modules, name=None):
    m = _mod("sequential", name)
    m.sequential.modules.extend(modules)
    return m


def residual(body, shortcut=None, name=None):
    m = _mod("residual", name, body=body)
    if shortcut is not None:
        m.residual.shortcut.CopyFrom(shortcut)
    return m


def linear(i, o, bias=True, name=None):
    return _mod("linear", name, in_features=i, out_features=o, bias=bias)


def conv2d(i, o, k, stride=1, padding=0, bias=True, name=None):
    return _mod("conv2d", name, in_channels=i, out_channels=o, kernel_size=k, stride=stride,
                padding=padding, bias=bias)


def batch_norm1d(n, name=None):
    return _mod("batch_norm1d", name, num_features=n)


def batch_norm2d(n, name=None):
    return _mod("batch_norm2d", name, num_features=n)


def relu(name=None):
    return _mod("relu", name)


def dropout(p=0.5, name=None):
    return _mod("dropout", name, p=p)


def max_pool2d(k, name=None):
    return _mod("max_pool2d", name, kernel_size=k)


def adaptive_avg_pool2d(size, name=None):
    return _mod("adaptive_avg_pool2d", name, output_size=[size])


def flatten(name=None):
    return _mod("flatten", name)


def embedding(n, d, name=None):
    return _mod("embedding", name, num_embeddings=n, embedding_dim=d)


# ---- the test models ----------------------------------------------------------


def mlp(*sizes):
    """Linear, ReLU, Linear, ... over sizes[0] -> sizes[-1] (keys 0, 2, 4, ...)."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [linear(a, b), relu()]
    return seq(*layers[:-1])


def mlp_small():
    """Linear 64->64, ReLU, Linear 64->10. Input [N, 64]."""
    return mlp(64, 64, 10)


def cnn():
    """Conv + BatchNorm2d + ReLU + MaxPool + Dropout + Linear. Input [N, 3, 8, 8]."""
    return seq(conv2d(3, 8, 3, padding=1), batch_norm2d(8), relu(), max_pool2d(2),
               dropout(0.25), flatten(), linear(8 * 4 * 4, 10))


def tiny_resnet():
    """A stem and one downsampling residual block whose shortcut is conv 1x1 + BN.
    Input [N, 3, 8, 8]."""
    body = seq(conv2d(8, 16, 3, stride=2, padding=1, bias=False), batch_norm2d(16), relu(),
               conv2d(16, 16, 3, padding=1, bias=False), batch_norm2d(16))
    shortcut = seq(conv2d(8, 16, 1, stride=2, bias=False), batch_norm2d(16))
    return seq(conv2d(3, 8, 3, padding=1, name="stem"), batch_norm2d(8, name="bn"), relu(),
               residual(body, shortcut, name="block"), relu(), adaptive_avg_pool2d(1),
               flatten(), linear(16, 10, name="head"))


# ---- optimizers and losses ---------------------------------------------------


def sgd(lr, momentum=0.0, weight_decay=0.0, nesterov=False, clip=0.0):
    o = pb.OptimizerSpec(sgd=pb.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                    nesterov=nesterov))
    if clip:
        o.grad_clip_norm = clip
    return o


def adam(lr=1e-3, weight_decay=0.0, clip=0.0):
    o = pb.OptimizerSpec(adam=pb.Adam(lr=lr, weight_decay=weight_decay))
    if clip:
        o.grad_clip_norm = clip
    return o


def cross_entropy(reduction=pb.LossSpec.MEAN):
    return pb.LossSpec(kind=pb.LossSpec.CROSS_ENTROPY, reduction=reduction)


def mse(reduction=pb.LossSpec.MEAN):
    return pb.LossSpec(kind=pb.LossSpec.MSE, reduction=reduction)


# ---- torch twins ----------------------------------------------------------------


def torch_model(spec):
    """The torch.nn module `spec` describes, with PyTorch's own initialisation."""
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, body, shortcut):
            super().__init__()
            self.body = body
            self.shortcut = shortcut

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    def bn(cls, b):
        return cls(b.num_features, eps=b.eps or 1e-5, momentum=b.momentum or 0.1,
                   affine=b.affine, track_running_stats=b.track_running_stats)

    def pool(cls, p):
        return cls(p.kernel_size, stride=p.stride or p.kernel_size, padding=p.padding)

    def build(m):
        kind = m.WhichOneof("kind")
        f = getattr(m, kind)
        if kind == "sequential":
            return nn.Sequential(OrderedDict(
                (c.name if c.HasField("name") else str(i), build(c))
                for i, c in enumerate(f.modules)))
        if kind == "residual":
            return Residual(build(f.body), build(f.shortcut) if f.HasField("shortcut") else None)
        if kind == "linear":
            return nn.Linear(f.in_features, f.out_features, bias=f.bias)
        if kind == "conv2d":
            return nn.Conv2d(f.in_channels, f.out_channels, f.kernel_size, stride=f.stride or 1,
                             padding=f.padding, dilation=f.dilation or 1, groups=f.groups or 1,
                             bias=f.bias)
        if kind == "batch_norm1d":
            return bn(nn.BatchNorm1d, f)
        if kind == "batch_norm2d":
            return bn(nn.BatchNorm2d, f)
        if kind == "layer_norm":
            return nn.LayerNorm(list(f.normalized_shape), eps=f.eps or 1e-5,
                                elementwise_affine=f.elementwise_affine)
        if kind == "leaky_relu":
            return nn.LeakyReLU(f.negative_slope)
        if kind == "softmax":
            return nn.Softmax(dim=f.axis)
        if kind == "dropout":
            return nn.Dropout(f.p)
        if kind == "max_pool2d":
            return pool(nn.MaxPool2d, f)
        if kind == "avg_pool2d":
            return pool(nn.AvgPool2d, f)
        if kind == "adaptive_avg_pool2d":
            size = list(f.output_size)
            return nn.AdaptiveAvgPool2d(size[0] if len(size) == 1 else tuple(size))
        if kind == "embedding":
            return nn.Embedding(f.num_embeddings, f.embedding_dim)
        simple = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU,
                  "silu": nn.SiLU, "flatten": nn.Flatten, "identity": nn.Identity}
        return simple[kind]()

    return build(spec)
