#!/usr/bin/env python3
"""The demo's last step: PyTorch loads traind's checkpoint and agrees.

usage: verify_in_torch.py OUTDIR   (as written by train_digits)

Loads OUTDIR/digits_mlp.safetensors into torch's
nn.Sequential(Linear(64,128), ReLU(), Linear(128,10)) with strict=True and
compares its predictions on the held-out set with traind's.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../tests/parity"))
import safetensors_np as st  # noqa: E402


def main():
    try:
        import torch
        import torch.nn as nn
    except ImportError:
        print("PyTorch not installed here: skipping the PyTorch check")
        return 0
    outdir = sys.argv[1]
    state, _ = st.load_torch(os.path.join(outdir, "digits_mlp.safetensors"))
    test, _ = st.load(os.path.join(outdir, "digits_test.safetensors"))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(test["x"])).numpy()
    ours = test["logits"]
    agree = np.mean(logits.argmax(1) == ours.argmax(1)) * 100
    acc = np.mean(logits.argmax(1) == test["y"]) * 100
    diff = np.max(np.abs(logits - ours))
    print(f"PyTorch loaded the checkpoint (strict=True): test accuracy {acc:.2f}%, "
          f"predictions agree with traind on {agree:.1f}% of images "
          f"(largest logit difference {diff:.1e})")
    return 0 if agree == 100.0 else 1


if __name__ == "__main__":
    sys.exit(main())
