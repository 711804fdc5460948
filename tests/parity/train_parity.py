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
same steps with the same torch.optim optimizer in float64 (the oracle) and in
float32, and compare the loss at every step, every parameter and buffer at the
end, and the eval-mode output. Error: ||ours - torch64|| / ||torch64|| per
tensor; limit 1e-4, or SLACK x PyTorch float32's own error where that is
larger (ill-conditioned tensors, see below).
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
# Where float32 training is ill-conditioned (a ReLU input on the kink flips
# between float32 and float64; a conv bias before BatchNorm has a true
# gradient of zero, so adaptive optimizers amplify rounding noise), PyTorch's
# own float32 run is also far from the float64 one. There the bound is
# SLACK times PyTorch float32's own error on the same tensor.
SLACK = 4.0


def rel_err(ours, ref):
    """Normwise relative error ||ours - ref|| / max(||ref||, 1e-6)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    return float(np.linalg.norm(ours - ref)) / max(float(np.linalg.norm(ref)), 1e-6)


def make_optimizer(params, cfg):
    cfg = dict(cfg)
    kind = cfg.pop("kind")
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[kind]
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    return cls(params, **cfg)


def train_torch(meta, init, data, dtype):
    """Replays the run in PyTorch at `dtype`: (losses, state_dict, eval output)."""
    torch.manual_seed(0)
    model, _ = make(meta["workload"])
    model = model.to(dtype)

    def cast(a):
        t = torch.from_numpy(np.array(a))
        return t.to(dtype) if t.is_floating_point() else t

    # strict=True: every key and shape of our checkpoint must match torch's.
    model.load_state_dict({k: cast(v) for k, v in init.items()}, strict=True)
    opt = make_optimizer(model.parameters(), json.loads(meta["optimizer"]))
    crit = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for i in range(int(meta["steps"])):
        opt.zero_grad()
        loss = crit(model(cast(data[f"x.{i}"])), cast(data[f"y.{i}"]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        eval_out = model(cast(data["x.0"])).double().numpy()
    state = {k: v.double().numpy() if v.is_floating_point() else v.numpy()
             for k, v in model.state_dict().items()}
    return losses, state, eval_out


def check_run(d, run):
    """Worst (name, ours error, allowed) over every compared quantity."""
    data, meta = st.load(os.path.join(d, run + ".data.safetensors"))
    init, _ = st.load(os.path.join(d, run + ".init.safetensors"))
    final, fmeta = st.load(os.path.join(d, run + ".final.safetensors"))
    ref = train_torch(meta, init, data, torch.float64)
    t32 = train_torch(meta, init, data, torch.float32)

    compared = []  # (name, ours vs float64, torch float32 vs float64)
    ours_losses = json.loads(fmeta["losses"])
    if len(ours_losses) != len(ref[0]):
        return [("loss count", float("inf"), 0.0)]
    for i, (a, b, c) in enumerate(zip(ours_losses, ref[0], t32[0])):
        compared.append((f"loss[{i}]", rel_err([a], [b]), rel_err([c], [b])))
    for k, v in ref[1].items():
        if k not in final:
            return [(f"missing {k}", float("inf"), 0.0)]
        compared.append((k, rel_err(final[k], v), rel_err(t32[1][k], v)))
    extra = [k for k in final if k not in ref[1] and not k.startswith("__parity__.")]
    if extra:
        return [(f"unexpected {extra[0]}", float("inf"), 0.0)]
    compared.append(("eval output", rel_err(final["__parity__.eval_out"], ref[2]),
                     rel_err(t32[2], ref[2])))
    return [(name, e, max(TOL, SLACK * e32), e32) for name, e, e32 in compared]


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    runs = sorted(os.path.basename(p)[:-len(".data.safetensors")]
                  for p in glob.glob(os.path.join(d, "*.data.safetensors")))
    failures = 0
    overall = ("", 0.0)
    for run in runs:
        try:
            rows = check_run(d, run)
        except Exception as e:
            print(f"FAIL {run:28s} {type(e).__name__}: {e}")
            failures += 1
            continue
        bad = [r for r in rows if not r[1] <= r[2]]
        worst = max(rows, key=lambda r: r[1])
        worst32 = max(rows, key=lambda r: r[3])
        failures += bool(bad)
        print(f"{'FAIL' if bad else 'ok  '} {run:24s} ours {worst[1]:.1e} ({worst[0]}); "
              f"torch-f32 {worst32[3]:.1e} ({worst32[0]})"
              + "".join(f"\n     {n}: {e:.2e} > allowed {a:.2e}" for n, e, a, _ in bad))
        if worst[1] > overall[1]:
            overall = (f"{run}: {worst[0]}", worst[1])
    print(f"train parity: {len(runs)} runs, worst {overall[1]:.2e} ({overall[0]})")
    print(f"{len(runs) - failures} passed, {failures} failed")
    return 1 if failures or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
