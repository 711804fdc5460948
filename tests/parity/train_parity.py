#!/usr/bin/env python3
"""Training parity: traind's modules + optimizers against PyTorch.

usage: train_parity.py DUMP_DIR

train_dump (C) writes, per run <workload>.<optimizer>:
  <run>.init.safetensors   the model's initial state_dict (traind's own init)
  <run>.data.safetensors   x.<i>, y.<i> for every step; metadata: workload,
                           optimizer (JSON config), steps
  <run>.final.safetensors  the final state_dict, "eval_out" (model.eval()(x.0))
                           under the prefix "__parity__."; metadata: losses (JSON)
Here: build the twin model (train_models.py), load the initial state with
strict=True (so our checkpoints must load into PyTorch as they are), train the
same steps with the same torch.optim optimizer in float64, and compare the
loss at every step, every parameter and buffer at the end, and the eval-mode
output. Error: max|ours - torch| / max(max|torch|, 1e-3) per tensor; limit 1e-4.
"""
import glob
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

import safetensors_np as st
from train_models import make

TOL = 1e-4


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - ref))) / max(float(np.max(np.abs(ref))), 1e-3)


def make_optimizer(params, cfg):
    kind = cfg.pop("kind")
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[kind]
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    return cls(params, **cfg)


def check_run(d, run):
    data, meta = st.load(os.path.join(d, run + ".data.safetensors"))
    init, _ = st.load(os.path.join(d, run + ".init.safetensors"))
    final, fmeta = st.load(os.path.join(d, run + ".final.safetensors"))
    workload = meta["workload"]
    steps = int(meta["steps"])
    cfg = json.loads(meta["optimizer"])

    torch.manual_seed(0)
    model, _ = make(workload)
    model = model.double()
    # strict=True: every key and shape of our checkpoint must match torch's.
    sd = {k: torch.from_numpy(np.array(v)) for k, v in init.items()}
    sd = {k: (v.double() if v.dtype == torch.float32 else v) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    opt = make_optimizer(model.parameters(), cfg)
    crit = nn.CrossEntropyLoss()

    def batch(i):
        x = torch.from_numpy(np.array(data[f"x.{i}"]))
        x = x.double() if x.dtype == torch.float32 else x
        return x, torch.from_numpy(np.array(data[f"y.{i}"]))

    model.train()
    ref_losses = []
    for i in range(steps):
        x, y = batch(i)
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        ref_losses.append(loss.item())
    ours_losses = json.loads(fmeta["losses"])
    worst = ("", 0.0)
    errs = []
    for i, (a, b) in enumerate(zip(ours_losses, ref_losses)):
        e = abs(a - b) / max(abs(b), 1e-3)
        errs.append(e)
        worst = max(worst, (f"loss[{i}]", e), key=lambda t: t[1])
    if len(ours_losses) != steps:
        worst = ("loss count", float("inf"))
    ref_sd = model.state_dict()
    for k, v in ref_sd.items():
        if k not in final:
            worst = (f"missing {k}", float("inf"))
            continue
        e = rel_err(final[k], v.numpy())
        if e > worst[1]:
            worst = (k, e)
    extra = [k for k in final if k not in ref_sd and not k.startswith("__parity__.")]
    if extra:
        worst = (f"unexpected {extra[0]}", float("inf"))
    model.eval()
    with torch.no_grad():
        e = rel_err(final["__parity__.eval_out"], model(batch(0)[0]).numpy())
    if e > worst[1]:
        worst = ("eval output", e)
    return worst, max(errs) if errs else 0.0


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    runs = sorted(os.path.basename(p)[:-len(".data.safetensors")]
                  for p in glob.glob(os.path.join(d, "*.data.safetensors")))
    failures = 0
    overall = ("", 0.0)
    for run in runs:
        try:
            (where, err), loss_err = check_run(d, run)
        except Exception as e:
            print(f"FAIL {run:28s} {type(e).__name__}: {e}")
            failures += 1
            continue
        ok = err <= TOL
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {run:28s} worst {err:.2e} at {where}  "
              f"(worst loss err {loss_err:.2e})")
        if err > overall[1]:
            overall = (f"{run}: {where}", err)
    print(f"train parity: {len(runs)} runs, worst {overall[1]:.2e} ({overall[0]})")
    print(f"{len(runs) - failures} passed, {failures} failed")
    return 1 if failures or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
