"""safetensors_np: the safetensors format in plain numpy (no safetensors package).

Parity tests use it to load traind's checkpoints into torch and to write
checkpoints from torch for traind to read. It follows the reference
implementation (huggingface/safetensors, tensor.rs):

- 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data;
- JSON written compactly, "__metadata__" (a str -> str map) first and only
  when given, each entry {"dtype", "shape", "data_offsets": [begin, end]};
- the header padded with spaces to a multiple of 8;
- tensors sorted by descending dtype alignment, then by name (as
  safetensors.torch.save_file does); sort=False keeps the dict's order, which
  is how traind writes (a state_dict's order);
- reading validates like the reference: header size limit, JSON object,
  known dtypes, sizes matching shapes, offsets tiling the data exactly (in
  any order), no duplicate keys.

    tensors, metadata = load(path)          # dict name -> np.ndarray, dict or None
    save(tensors, path, metadata=None)      # numpy arrays or torch tensors
    data = dumps(tensors, metadata, sort=True); loads(data)
    load_torch(path) -> dict of torch tensors
"""
import json
import os

import numpy as np

MAX_HEADER = 100_000_000
METADATA_KEY = "__metadata__"

# name -> numpy dtype (little-endian). The reference's order of increasing
# alignment, which save_file sorts by (descending), is ALIGNMENT_ORDER.
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
ALIGNMENT_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                   "I32", "U32", "F32", "F64", "I64", "U64"]


class SafetensorsError(ValueError):
    pass


def _dtype_name(arr):
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    for name, npdt in DTYPES.items():
        if npdt == dt:
            return name
    raise SafetensorsError(f"dtype {arr.dtype} has no safetensors name")


def _to_numpy(t):
    if isinstance(t, np.ndarray):
        return t
    if hasattr(t, "detach"):  # a torch tensor; the import stays optional
        return t.detach().cpu().contiguous().numpy()
    return np.asarray(t)


def dumps(tensors, metadata=None, sort=True):
    """Serializes {name: array} (numpy or torch) to bytes."""
    arrays = [(name, _to_numpy(t)) for name, t in tensors.items()]
    for name, _ in arrays:
        if name == METADATA_KEY:
            raise SafetensorsError(f"tensor name {METADATA_KEY!r} is reserved")
    if sort:
        arrays.sort(key=lambda kv: (-ALIGNMENT_ORDER.index(_dtype_name(kv[1])), kv[0]))
    header = {}
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must map str to str, got {k!r}: {v!r}")
        header[METADATA_KEY] = dict(metadata)
    chunks, offset = [], 0
    for name, arr in arrays:
        dtype = _dtype_name(arr)
        raw = np.ascontiguousarray(arr, dtype=DTYPES[dtype]).tobytes(order="C")
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise SafetensorsError(f"duplicate key {k!r} in header")
        out[k] = v
    return out


def _is_uint(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def loads(data):
    """Parses bytes into ({name: np.ndarray}, metadata or None).

    Tensors come in data order; arrays are copies (writable, native order)."""
    data = memoryview(data).cast("B")
    if len(data) < 8:
        raise SafetensorsError(f"{len(data)} bytes is too short for a header length")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER:
        raise SafetensorsError(f"header length {n} is above {MAX_HEADER}")
    if n > len(data) - 8:
        raise SafetensorsError(f"header length {n} exceeds the {len(data) - 8} bytes after it")
    try:
        header = json.loads(bytes(data[8:8 + n]).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None and (not isinstance(metadata, dict) or
                                 not all(isinstance(v, str) for v in metadata.values())):
        raise SafetensorsError(f"{METADATA_KEY} is not a map of strings")
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise SafetensorsError(f"tensor {name!r}: entry needs dtype, shape, data_offsets")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise SafetensorsError(f"tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(_is_uint(o) for o in offs)
                or offs[1] < offs[0]):
            raise SafetensorsError(f"tensor {name!r}: bad data_offsets {offs!r}")
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[dtype].itemsize
        if offs[1] - offs[0] != nbytes:
            raise SafetensorsError(f"tensor {name!r}: data_offsets {offs} hold "
                                   f"{offs[1] - offs[0]} bytes, {dtype} {shape} needs {nbytes}")
        entries.append((offs[0], offs[1], name, dtype, shape))
    entries.sort(key=lambda e: (e[0], e[1]))
    pos = 0
    for begin, end, name, _, _ in entries:
        if begin != pos:
            raise SafetensorsError(f"tensor {name!r}: data starts at {begin}, expected {pos}")
        pos = end
    base = 8 + n
    if base + pos != len(data):
        raise SafetensorsError(f"tensors cover {pos} data bytes, file has {len(data) - base}")
    tensors = {}
    for begin, end, name, dtype, shape in entries:
        arr = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[dtype]).reshape(shape)
        tensors[name] = arr.astype(arr.dtype.newbyteorder("="), copy=True)
    return tensors, metadata


def save(tensors, path, metadata=None, sort=True):
    """Writes atomically (temp file in the same directory, fsync, rename)."""
    data = dumps(tensors, metadata, sort)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path):
    with open(path, "rb") as f:
        return loads(f.read())


def load_torch(path):
    """({name: torch.Tensor}, metadata): a state_dict for load_state_dict."""
    import torch
    tensors, metadata = load(path)
    return {k: torch.from_numpy(v) for k, v in tensors.items()}, metadata
