#!/usr/bin/env python3
"""Regenerates digits.csv from Debian's python3-sklearn (run with /usr/bin/python3)."""
import os

from sklearn.datasets import load_digits

d = load_digits()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.csv")
with open(out, "w") as f:
    f.write(",".join([f"p{i}" for i in range(64)] + ["label"]) + "\n")
    for x, y in zip(d.data, d.target):
        f.write(",".join(str(int(v)) for v in x) + f",{int(y)}\n")
print(f"wrote {out}: {d.data.shape[0]} images")
