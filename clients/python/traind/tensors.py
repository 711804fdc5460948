"""numpy arrays <-> traind.v1.Tensor messages.

traind computes in float32 and indexes with int64. Arrays of other numeric
dtypes are converted (floating -> float32; integer and bool -> int64), as are
lists and anything numpy.asarray accepts (a CPU torch tensor); the rest
(strings, objects, complex numbers) is refused with a TypeError naming the
argument.
"""
import numpy as np

from .v1 import trainer_pb2 as pb

_TO_PB = {np.dtype("<f4"): pb.FLOAT32, np.dtype("<i8"): pb.INT64}
_FROM_PB = {pb.FLOAT32: np.dtype("<f4"), pb.INT64: np.dtype("<i8")}


def as_array(x, what="input"):
    """x as a contiguous little-endian float32 or int64 numpy array."""
    if x is None:
        raise TypeError(f"{what}: expected an array, got None")
    if not isinstance(x, np.ndarray):
        if isinstance(x, (str, bytes, dict, set)):
            raise TypeError(f"{what}: expected a numeric array, got {type(x).__name__}")
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, no import needed
            x = x.detach().cpu().numpy()
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{what}: cannot convert {type(x).__name__} to an array: {e}") from None
    kind = x.dtype.kind
    if kind == "f":
        dtype = np.dtype("<f4")
    elif kind in "iub":
        dtype = np.dtype("<i8")
    else:
        raise TypeError(f"{what}: dtype {x.dtype} is not numeric; traind takes float32 "
                        f"(or any float, converted) and int64 (or any integer, converted)")
    return np.ascontiguousarray(x, dtype=dtype)


def to_proto(x, what="input"):
    """A Tensor message holding x (see as_array for what x may be)."""
    a = as_array(x, what)
    return pb.Tensor(dtype=_TO_PB[a.dtype], shape=a.shape, data=a.tobytes())


def from_proto(t):
    """The numpy array (a writable copy) a Tensor message holds."""
    dtype = _FROM_PB.get(t.dtype)
    if dtype is None:
        raise TypeError(f"the server sent a tensor of dtype {t.dtype}, which this client "
                        f"does not know")
    return np.frombuffer(t.data, dtype=dtype).reshape(tuple(t.shape)).copy()
