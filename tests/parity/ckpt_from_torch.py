#!/usr/bin/env python3
"""Checkpoints written by PyTorch load into traind and give the same outputs.

usage: ckpt_from_torch.py CKPT_FORWARD_BINARY OUTDIR

For every test model: build the PyTorch twin (train_models.py) with torch's
own initialisation, train it a few steps so BatchNorm buffers are not at
their defaults, and save its state_dict the way the safetensors package does
(keys sorted). ckpt_forward builds the traind model from an unrelated seed,
loads the file with strict=True and runs an eval forward; its output must
match torch's (normwise relative error <= 1e-5).
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

import safetensors_np as st
from train_models import WORKLOADS, make

TOL = 1e-5


def main():
    binary, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    failures = 0
    for name in WORKLOADS:
        model, shape = make(name)
        if name == "embed_ln":
            x = torch.randint(0, 50, shape)
        else:
            x = torch.randn(*shape)
        y = torch.randint(0, 10, (shape[0],))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            ref = model(x).numpy()
        tensors = {k: v.numpy() for k, v in model.state_dict().items()}
        tensors["__input__"] = x.numpy()
        src = os.path.join(outdir, f"{name}.torch.safetensors")
        dst = os.path.join(outdir, f"{name}.traind.safetensors")
        st.save(tensors, src)
        proc = subprocess.run([binary, name, src, dst], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"FAIL {name:12s} {proc.stderr.strip()}")
            failures += 1
            continue
        ours = st.load(dst)[0]["output"].astype(np.float64)
        err = np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-12)
        ok = err <= TOL
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:12s} loaded strict, eval output error {err:.2e}")
    print(f"{len(WORKLOADS) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
