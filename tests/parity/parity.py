#!/usr/bin/env python3
"""Compare traind's op outputs and gradients with PyTorch's.

usage: parity.py DUMP_DIR [--ops-def ops.def]

For every <case>.json written by parity_dump: rebuild the inputs in float64,
run the PyTorch reference registered for the case's op (torch_*.py), backprop
the same dy, and compare. Error is max|ours - torch| / max(max|torch|, 1e-3)
per tensor (a relative error on the tensor's scale). Limits: 1e-5 forward,
1e-4 gradients. With --ops-def, also fails when an op in the table has no
case (so a new op cannot skip parity).
"""
import argparse
import glob
import importlib.util
import json
import os
import re
import sys

import numpy as np
import torch

from torch_ops import OPS

HERE = os.path.dirname(os.path.abspath(__file__))
FWD_TOL = 1e-5
GRAD_TOL = 1e-4
DTYPES = {"float32": np.float32, "int64": np.int64, "int32": np.int32}


def load_families():
    for path in sorted(glob.glob(os.path.join(HERE, "torch_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "torch_ops":
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def load(d, desc):
    if desc is None:
        return None
    a = np.fromfile(os.path.join(d, desc["file"]), dtype=DTYPES[desc["dtype"]])
    return a.reshape(desc["shape"])


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(ref))), 1e-3)
    diff = np.abs(ours - ref)
    if not np.all(np.isfinite(diff)):
        same_nonfinite = np.array_equal(np.isnan(ours), np.isnan(ref)) and \
            np.array_equal(ours[np.isinf(ours)], ref[np.isinf(ref)])
        if not same_nonfinite:
            return float("inf")
        diff = np.where(np.isfinite(diff), diff, 0.0)
    return float(np.max(diff)) / scale


def run_case(d, case):
    inputs = []
    for entry in case["inputs"]:
        desc = entry["t"]
        a = load(d, desc)
        if a is None:
            inputs.append(None)
            continue
        t = torch.from_numpy(a.copy())
        if t.dtype == torch.float32:
            t = t.double()
        if desc.get("grad"):
            t.requires_grad_(True)
        inputs.append(t)
    fn = OPS.get(case["op"])
    if fn is None:
        raise KeyError(f"no PyTorch reference registered for op '{case['op']}'")
    ref = fn(inputs, case["params"])
    ours = load(d, case["out"])
    fwd = rel_err(ours, ref.detach().numpy())
    grad = 0.0
    dy = load(d, case["dy"])
    if dy is not None:
        ref.backward(torch.from_numpy(dy.astype(np.float64)))
        for t, g in zip(inputs, case["grads"]):
            ours_g = load(d, g["t"])
            if ours_g is None:
                continue
            ref_g = t.grad if t.grad is not None else torch.zeros_like(t)
            grad = max(grad, rel_err(ours_g, ref_g.numpy()))
    return fwd, grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump_dir")
    ap.add_argument("--ops-def")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_families()
    cases = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(args.dump_dir, "*.json")))]
    failures = 0
    worst_fwd = (0.0, "")
    worst_grad = (0.0, "")
    for case in cases:
        try:
            fwd, grad = run_case(args.dump_dir, case)
        except Exception as e:  # a missing reference or a shape error is a failure
            print(f"FAIL {case['name']:40s} {type(e).__name__}: {e}")
            failures += 1
            continue
        ok = fwd <= FWD_TOL and grad <= GRAD_TOL
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case['name']:40s} fwd {fwd:.2e}  grad {grad:.2e}")
        worst_fwd = max(worst_fwd, (fwd, case["name"]))
        worst_grad = max(worst_grad, (grad, case["name"]))
    missing = []
    if args.ops_def:
        names = re.findall(r"^TD_OP\(\w+,\s*(\w+)\)", open(args.ops_def).read(), re.M)
        covered = {c["op"] for c in cases}
        missing = [n for n in names if n not in covered]
        for n in missing:
            print(f"FAIL op '{n}' has no parity case")
    print(f"parity: {len(cases)} cases, worst forward {worst_fwd[0]:.2e} ({worst_fwd[1]}), "
          f"worst gradient {worst_grad[0]:.2e} ({worst_grad[1]})")
    failed = failures + len(missing)
    print(f"{len(cases) - failures} passed, {failed} failed")
    return 1 if failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
