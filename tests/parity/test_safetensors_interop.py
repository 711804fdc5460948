#!/usr/bin/env python3
"""safetensors interop between traind (C) and the numpy/PyTorch side.

usage: test_safetensors_interop.py ST_ROUNDTRIP WORKDIR

1. C writes a checkpoint; safetensors_np reads it bit-exactly, its bytes equal
   what the reference layout gives for the same tensors in the same order, and
   torch loads it into an nn.Linear with strict=True.
2. Python writes a torch state_dict the way safetensors.torch.save_file does
   (sorted by dtype, then name); C reads it bit-exactly (st_roundtrip dump) and
   writes it back (st_roundtrip copy), which Python reads again.
3. C refuses what it cannot read (F16, F64, a truncated file) with a message
   naming the problem.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np as st  # noqa: E402


def expected_c_checkpoint():
    """What st_roundtrip write produces (keep in sync with build() there)."""
    ramp = np.arange(12, dtype=np.float32) * np.float32(0.25) - np.float32(1.0)
    tensors = {
        "fc.weight": ramp.reshape(4, 3).T.copy(),
        "fc.bias": np.array([1, 3, 5], dtype=np.float32),
        "bn.running_var": np.full(4, 0.1, dtype=np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
        "labels": np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max], np.int64),
        "counts": np.array([[np.iinfo(np.int32).min, -7], [7, np.iinfo(np.int32).max]], np.int32),
        "special": np.array([0x7fc00000, 0x7f800000, 0xff800000, 0x80000000, 0x00000001],
                            dtype=np.uint32).view(np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(-2.5, dtype=np.float32),
    }
    metadata = {"format": "pt", "producer": "traind st_roundtrip \u2713"}
    return tensors, metadata


def bits(a):
    """Array contents as integers, exact for floats (NaN payloads, -0)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32) if a.dtype == np.float32 else a


def assert_same(got, want, where):
    assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
    for k in want:
        g, w = got[k], want[k]
        assert g.dtype == w.dtype, f"{where}: {k}: dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{where}: {k}: shape {g.shape} != {w.shape}"
        assert np.array_equal(bits(g), bits(w)), f"{where}: {k}: values differ\n{g}\n{w}"


def run(tool, *args, ok=True):
    p = subprocess.run([tool, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {p.stderr.strip()}")
    if not ok and p.returncode == 0:
        raise AssertionError(f"{' '.join(args)} should have failed")
    return p


def c_dump(tool, path):
    """The checkpoint as C read it, as numpy arrays in C's order."""
    out = json.loads(run(tool, "dump", path).stdout)
    dtypes = {"F32": np.uint32, "I64": np.int64, "I32": np.int32}
    tensors = {}
    for t in out["tensors"]:
        a = np.array(t["data"], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
        tensors[t["name"]] = a.view(np.float32) if t["dtype"] == "F32" else a
    return tensors, out["metadata"]


def check_c_writes(tool, work):
    path = os.path.join(work, "from_c.safetensors")
    run(tool, "write", path)
    tensors, metadata = st.load(path)
    want, want_meta = expected_c_checkpoint()
    assert_same(tensors, want, "C -> numpy")
    assert metadata == want_meta, f"metadata {metadata} != {want_meta}"
    with open(path, "rb") as f:
        data = f.read()
    # Same bytes as the reference layout, tensors in traind's (insertion) order.
    assert data == st.dumps(want, want_meta, sort=False), "C file differs from the reference layout"
    n = int.from_bytes(data[:8], "little")
    assert n % 8 == 0 and data[8:8 + n].rstrip(b" ").endswith(b"}")

    sd, _ = st.load_torch(path)
    lin = torch.nn.Linear(4, 3)
    lin.load_state_dict({"weight": sd["fc.weight"], "bias": sd["fc.bias"]}, strict=True)
    x = torch.ones(1, 4)
    assert torch.equal(lin(x), x @ sd["fc.weight"].T + sd["fc.bias"])
    assert sd["bn.num_batches_tracked"].dtype == torch.int64
    assert sd["bn.num_batches_tracked"].item() == 7


def torch_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model.train()
    model(torch.randn(8, 5))  # moves running stats, bumps num_batches_tracked
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd["extra.transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).T  # strided
    sd["extra.int32"] = torch.tensor([-3, 0, 2**31 - 1], dtype=torch.int32)
    sd["extra.scalar"] = torch.tensor(1e-40)  # a denormal 0-d tensor
    sd["extra.empty"] = torch.zeros(2, 0, dtype=torch.int64)
    return sd


def check_python_writes(tool, work):
    sd = torch_state()
    meta = {"format": "pt", "epoch": "3"}
    path = os.path.join(work, "from_torch.safetensors")
    st.save(sd, path, meta)  # the reference's order: by dtype alignment, then name
    want = {k: v.contiguous().numpy() for k, v in sd.items()}
    file_order, _ = st.load(path)

    got, got_meta = c_dump(tool, path)
    assert got_meta == meta, f"metadata {got_meta} != {meta}"
    assert list(got) == list(file_order), "C should list tensors in data order"
    assert_same(got, {k: want[k] for k in file_order}, "torch -> C")

    copy = os.path.join(work, "copied_by_c.safetensors")
    run(tool, "copy", path, copy)
    back, back_meta = st.load(copy)
    assert back_meta == meta
    assert_same(back, {k: want[k] for k in file_order}, "torch -> C -> numpy")
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()
                           if not k.startswith("extra.")}, strict=True)


def check_c_refuses(tool, work):
    bad = os.path.join(work, "bad.safetensors")
    cases = [
        ({"h": np.ones(3, np.float16)}, "dtype \"F16\" is not supported"),
        ({"d": np.ones(3, np.float64)}, "dtype \"F64\" is not supported"),
    ]
    for tensors, problem in cases:
        st.save(tensors, bad)
        err = run(tool, "dump", bad, ok=False).stderr
        assert "FORMAT" in err and problem in err and bad in err, err
    data = st.dumps({"w": np.ones((2, 3), np.float32)})
    with open(bad, "wb") as f:
        f.write(data[:-1])
    err = run(tool, "dump", bad, ok=False).stderr
    assert "FORMAT" in err and "truncated" in err, err


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    tool, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    for check in (check_c_writes, check_python_writes, check_c_refuses):
        check(tool, work)
        print(f"ok   {check.__name__}")
    print("safetensors interop: all checks passed")


if __name__ == "__main__":
    main()
