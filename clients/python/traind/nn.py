"""Model specs that read like torch.nn, and losses.

    from traind import nn
    spec = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    spec = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 8, 3, padding=1), act=nn.ReLU()))

A spec describes a model; it holds no weights (the server creates them from
the seed). Its state-dict keys are PyTorch's: a child is named by its name
(OrderedDict / add_module) or else its index in the parent Sequential, and a
Residual's children are "body" and "shortcut". spec.to_proto() is the
traind.v1.Module message; spec.to_torch() builds the same architecture in
PyTorch (when it is installed), whose state_dict has the same keys, so a
checkpoint moves between the two with strict=True.

Arguments follow torch.nn's names and defaults. What traind does not support
(non-square kernels, BatchNorm momentum=None, ...) is refused with a
ValueError here rather than on the server.

Losses: nn.CrossEntropyLoss(label_smoothing=0.1), nn.MSELoss(), nn.L1Loss(),
nn.BCEWithLogitsLoss(), nn.NLLLoss(), each with reduction="mean" | "sum".
Wherever a loss is taken, its string name works too: "cross_entropy", "mse",
"l1", "bce_with_logits", "nll".
"""
import re
from collections import OrderedDict

from .v1 import trainer_pb2 as pb

__all__ = [
    "Module", "Sequential", "Residual", "Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d",
    "LayerNorm", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Softmax", "Dropout",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Embedding", "Identity",
    "Loss", "CrossEntropyLoss", "MSELoss", "L1Loss", "BCEWithLogitsLoss", "NLLLoss", "loss_spec",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _square(value, what):
    """torch takes an int or a pair; traind's windows are square."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{what}: traind supports square values only, got {tuple(value)}")
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what}: expected an int, got {value!r}")
    return value


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("to_torch() needs PyTorch (Debian: python3-torch)") from None
    return torch


class Module:
    """Base of every spec. Subclasses set `kind` (the Module oneof field) and
    fill its message in _fill()."""

    kind = None

    def to_proto(self, name=None):
        """The traind.v1.Module message for this spec (name: its key in the parent)."""
        msg = pb.Module()
        if name is not None:
            msg.name = name
        getattr(msg, self.kind).SetInParent()  # empty messages (ReLU) must still be set
        self._fill(getattr(msg, self.kind))
        return msg

    def _fill(self, m):
        pass

    def _args(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self._args()})"

    def to_torch(self):
        """The same architecture as a torch.nn.Module (fresh weights)."""
        raise NotImplementedError(f"{type(self).__name__}.to_torch")


class Sequential(Module):
    """nn.Sequential(m1, m2, ...) or nn.Sequential(OrderedDict(name=m, ...))."""

    kind = "sequential"

    def __init__(self, *modules):
        self._children = []  # (name or None, module)
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for m in modules:
                self.append(m)

    def append(self, module):
        """Adds an unnamed child (its key is its index)."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: child {len(self._children)} is "
                            f"{type(module).__name__}, not a traind.nn module")
        self._children.append((None, module))
        return self

    def add_module(self, name, module):
        """Adds a child under `name` ([A-Za-z0-9_-], at most 64 characters)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"Sequential: child name {name!r} must be 1-64 characters of "
                             f"[A-Za-z0-9_-]")
        if name in self.keys():
            raise ValueError(f"Sequential: a child is already named {name!r}")
        self.append(module)
        self._children[-1] = (name, module)
        return self

    def keys(self):
        """The children's state-dict keys, in order."""
        return [n if n is not None else str(i) for i, (n, _) in enumerate(self._children)]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return (m for _, m in self._children)

    def __getitem__(self, i):
        return self._children[i][1]

    def _fill(self, m):
        for name, child in self._children:
            m.modules.append(child.to_proto(name))

    def __repr__(self):
        if not self._children:
            return "Sequential()"
        lines = [f"  ({k}): " + repr(m).replace("\n", "\n  ")
                 for k, (_, m) in zip(self.keys(), self._children)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def to_torch(self):
        torch = _torch()
        return torch.nn.Sequential(OrderedDict(
            (k, m.to_torch()) for k, (_, m) in zip(self.keys(), self._children)))


_residual_cls = None


def _torch_residual():
    global _residual_cls
    if _residual_cls is None:
        torch = _torch()

        class Residual(torch.nn.Module):
            """output = body(x) + shortcut(x), keys body.* and shortcut.*."""

            def __init__(self, body, shortcut=None):
                super().__init__()
                self.body = body
                self.shortcut = shortcut

            def forward(self, x):
                return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

        _residual_cls = Residual
    return _residual_cls


class Residual(Module):
    """output = body(x) + shortcut(x); shortcut=None is the identity."""

    kind = "residual"

    def __init__(self, body, shortcut=None):
        for what, m in (("body", body), ("shortcut", shortcut)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"Residual: {what} is {type(m).__name__}, not a traind.nn module")
        if body is None:
            raise TypeError("Residual: body is required")
        self.body, self.shortcut = body, shortcut

    def _fill(self, m):
        m.body.CopyFrom(self.body.to_proto())
        if self.shortcut is not None:
            m.shortcut.CopyFrom(self.shortcut.to_proto())

    def __repr__(self):
        s = "Residual(\n  (body): " + repr(self.body).replace("\n", "\n  ")
        if self.shortcut is not None:
            s += "\n  (shortcut): " + repr(self.shortcut).replace("\n", "\n  ")
        return s + "\n)"

    def to_torch(self):
        return _torch_residual()(self.body.to_torch(),
                                 None if self.shortcut is None else self.shortcut.to_torch())


class Linear(Module):
    kind = "linear"

    def __init__(self, in_features, out_features, bias=True):
        self.in_features, self.out_features, self.bias = in_features, out_features, bool(bias)

    def _fill(self, m):
        m.in_features, m.out_features, m.bias = self.in_features, self.out_features, self.bias

    def _args(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"

    def to_torch(self):
        return _torch().nn.Linear(self.in_features, self.out_features, bias=self.bias)


class Conv2d(Module):
    kind = "conv2d"

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros"):
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode {padding_mode!r}: traind pads with zeros only")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _square(kernel_size, "Conv2d kernel_size")
        self.stride = _square(stride, "Conv2d stride")
        self.padding = _square(padding, "Conv2d padding")
        self.dilation = _square(dilation, "Conv2d dilation")
        self.groups, self.bias = groups, bool(bias)

    def _fill(self, m):
        m.in_channels, m.out_channels, m.kernel_size = (self.in_channels, self.out_channels,
                                                         self.kernel_size)
        m.stride, m.padding, m.dilation, m.groups = (self.stride, self.padding, self.dilation,
                                                     self.groups)
        m.bias = self.bias

    def _args(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias}")

    def to_torch(self):
        return _torch().nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size,
                                  stride=self.stride, padding=self.padding,
                                  dilation=self.dilation, groups=self.groups, bias=self.bias)


class _BatchNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True):
        if momentum is None:
            raise ValueError(f"{type(self).__name__}: momentum=None (a cumulative average) is "
                             f"not supported; give a number in (0, 1]")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)

    def _fill(self, m):
        m.num_features, m.eps, m.momentum = self.num_features, self.eps, self.momentum
        m.affine, m.track_running_stats = self.affine, self.track_running_stats

    def _args(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")

    def to_torch(self):
        return getattr(_torch().nn, type(self).__name__)(
            self.num_features, eps=self.eps, momentum=self.momentum, affine=self.affine,
            track_running_stats=self.track_running_stats)


class BatchNorm1d(_BatchNorm):
    kind = "batch_norm1d"


class BatchNorm2d(_BatchNorm):
    kind = "batch_norm2d"


class LayerNorm(Module):
    kind = "layer_norm"

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, bool(elementwise_affine)

    def _fill(self, m):
        m.normalized_shape.extend(self.normalized_shape)
        m.eps, m.elementwise_affine = self.eps, self.elementwise_affine

    def _args(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")

    def to_torch(self):
        return _torch().nn.LayerNorm(self.normalized_shape, eps=self.eps,
                                     elementwise_affine=self.elementwise_affine)


class _Stateless(Module):
    """A layer without arguments: the torch class of the same name."""

    def to_torch(self):
        return getattr(_torch().nn, type(self).__name__)()


class ReLU(_Stateless):
    kind = "relu"


class Sigmoid(_Stateless):
    kind = "sigmoid"


class Tanh(_Stateless):
    kind = "tanh"


class GELU(_Stateless):
    """The exact (erf) GELU, torch's default."""
    kind = "gelu"

    def __init__(self, approximate="none"):
        if approximate != "none":
            raise ValueError("GELU: only approximate='none' (the erf form) is supported")


class SiLU(_Stateless):
    kind = "silu"


class Flatten(_Stateless):
    """[N, d1, d2, ...] -> [N, d1 * d2 * ...] (torch's start_dim=1, end_dim=-1)."""
    kind = "flatten"

    def __init__(self, start_dim=1, end_dim=-1):
        if (start_dim, end_dim) != (1, -1):
            raise ValueError("Flatten: only start_dim=1, end_dim=-1 is supported")


class Identity(_Stateless):
    kind = "identity"


class LeakyReLU(Module):
    kind = "leaky_relu"

    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def _fill(self, m):
        m.negative_slope = self.negative_slope

    def _args(self):
        return f"negative_slope={self.negative_slope}"

    def to_torch(self):
        return _torch().nn.LeakyReLU(self.negative_slope)


class Softmax(Module):
    kind = "softmax"

    def __init__(self, dim=-1):
        self.dim = dim

    def _fill(self, m):
        m.axis = self.dim

    def _args(self):
        return f"dim={self.dim}"

    def to_torch(self):
        return _torch().nn.Softmax(dim=self.dim)


class Dropout(Module):
    kind = "dropout"

    def __init__(self, p=0.5):
        self.p = p

    def _fill(self, m):
        m.p = self.p

    def _args(self):
        return f"p={self.p}"

    def to_torch(self):
        return _torch().nn.Dropout(self.p)


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = _square(kernel_size, f"{type(self).__name__} kernel_size")
        self.stride = self.kernel_size if stride is None else _square(
            stride, f"{type(self).__name__} stride")
        self.padding = _square(padding, f"{type(self).__name__} padding")

    def _fill(self, m):
        m.kernel_size, m.stride, m.padding = self.kernel_size, self.stride, self.padding

    def _args(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def to_torch(self):
        return getattr(_torch().nn, type(self).__name__)(self.kernel_size, stride=self.stride,
                                                          padding=self.padding)


class MaxPool2d(_Pool2d):
    kind = "max_pool2d"


class AvgPool2d(_Pool2d):
    """Padding counts towards the average (torch's count_include_pad=True)."""
    kind = "avg_pool2d"


class AdaptiveAvgPool2d(Module):
    kind = "adaptive_avg_pool2d"

    def __init__(self, output_size):
        if isinstance(output_size, int):
            output_size = (output_size,)
        self.output_size = tuple(output_size)

    def _fill(self, m):
        m.output_size.extend(self.output_size)

    def _args(self):
        return f"output_size={self.output_size}"

    def to_torch(self):
        size = self.output_size[0] if len(self.output_size) == 1 else self.output_size
        return _torch().nn.AdaptiveAvgPool2d(size)


class Embedding(Module):
    kind = "embedding"

    def __init__(self, num_embeddings, embedding_dim):
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim

    def _fill(self, m):
        m.num_embeddings, m.embedding_dim = self.num_embeddings, self.embedding_dim

    def _args(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def to_torch(self):
        return _torch().nn.Embedding(self.num_embeddings, self.embedding_dim)


# ---- losses -------------------------------------------------------------------

_REDUCTIONS = {"mean": pb.LossSpec.MEAN, "sum": pb.LossSpec.SUM}


class Loss:
    """A loss of (output, target), computed by the server."""

    kind = None
    classification = False  # targets are class indices: fit() reports accuracy

    def __init__(self, reduction="mean"):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean' or 'sum', "
                             f"got {reduction!r}")
        self.reduction = reduction

    def to_proto(self):
        return pb.LossSpec(kind=self.kind, reduction=_REDUCTIONS[self.reduction])

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class CrossEntropyLoss(Loss):
    """Logits [N, C] and int64 class indices [N]."""
    kind = pb.LossSpec.CROSS_ENTROPY
    classification = True

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.label_smoothing = label_smoothing

    def to_proto(self):
        msg = super().to_proto()
        msg.label_smoothing = self.label_smoothing
        return msg


class NLLLoss(Loss):
    """Log-probabilities [N, C] and int64 class indices [N]."""
    kind = pb.LossSpec.NLL
    classification = True


class MSELoss(Loss):
    kind = pb.LossSpec.MSE


class L1Loss(Loss):
    kind = pb.LossSpec.L1


class BCEWithLogitsLoss(Loss):
    kind = pb.LossSpec.BCE_WITH_LOGITS


_BY_NAME = {"cross_entropy": CrossEntropyLoss, "nll": NLLLoss, "mse": MSELoss, "l1": L1Loss,
            "bce_with_logits": BCEWithLogitsLoss}


def loss_spec(loss):
    """A Loss from a Loss, its string name, or a traind.v1.LossSpec message."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        cls = _BY_NAME.get(loss.lower())
        if cls is None:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(_BY_NAME)}")
        return cls()
    if isinstance(loss, pb.LossSpec):
        return _RawLoss(loss)
    raise TypeError(f"loss: expected a traind.nn loss, a name ({', '.join(_BY_NAME)}) or a "
                    f"LossSpec, got {type(loss).__name__}")


class _RawLoss(Loss):
    def __init__(self, msg):
        self._msg = msg
        self.classification = msg.kind in (pb.LossSpec.CROSS_ENTROPY, pb.LossSpec.NLL)

    def to_proto(self):
        return self._msg

    def __repr__(self):
        return f"LossSpec({self._msg})"
