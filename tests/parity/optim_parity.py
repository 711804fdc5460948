#!/usr/bin/env python3
"""Compare traind's optimizers with torch.optim (float32, foreach=False).

usage: optim_parity.py DUMP_DIR

For every <case>.json written by optim_dump: rebuild the initial parameters,
replay the same gradients through clip_grad_norm_, the torch optimizer and
its LR scheduler (torch.optim.lr_scheduler: StepLR, MultiStepLR,
CosineAnnealingLR, LinearLR warm-up chained by SequentialLR), and compare
after every step. Parameter error is max|ours - torch| / max(max|torch|, 1e-3)
per tensor; LR and norm errors are relative. Limit: 1e-6. Also reports how
many parameter values are bit-identical.
"""
import glob
import json
import os
import sys
import warnings

import numpy as np
import torch

TOL = 1e-6

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


def make_scheduler(opt, s):
    if s is None:
        return None
    kind = s["kind"]
    if kind == "constant":
        main = None
    elif kind == "step":
        main = torch.optim.lr_scheduler.StepLR(opt, step_size=s["step_size"], gamma=s["gamma"])
    elif kind == "multistep":
        main = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=s["milestones"],
                                                    gamma=s["gamma"])
    elif kind == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["t_max"],
                                                          eta_min=s["eta_min"])
    else:
        raise ValueError("unknown schedule kind " + kind)
    w = s["warmup_steps"]
    if w == 0:
        return main
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=s["warmup_start_factor"],
                                             end_factor=1.0, total_iters=w)
    if main is None:
        return warm
    return torch.optim.lr_scheduler.SequentialLR(opt, [warm, main], milestones=[w])


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-3)
    return float(np.max(np.abs(ours - ref))) / scale


def run_case(d, case):
    shapes = [tuple(s) for s in case["shapes"]]
    sizes = [int(np.prod(s)) for s in shapes]
    total = sum(sizes)
    steps = case["steps"]
    ngroups = len(case["groups"])

    def load(key, dtype):
        return np.fromfile(os.path.join(d, case["files"][key]), dtype=dtype)

    def split(flat):
        out, off = [], 0
        for s, n in zip(shapes, sizes):
            out.append(flat[off:off + n].reshape(s))
            off += n
        return out

    init = load("init", np.float32)
    grads = load("grads", np.float32).reshape(steps, total)
    ours = load("params", np.float32).reshape(steps, total)
    our_lrs = load("lrs", np.float64).reshape(steps, ngroups)
    our_norms = load("norms", np.float32)

    params = [torch.tensor(a.copy(), requires_grad=True) for a in split(init)]
    groups = []
    for g in case["groups"]:
        g = dict(g)
        g["params"] = [params[i] for i in g["params"]]
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    # Group 0's values are also the constructor's defaults: torch's Adagrad
    # fills its sums from the constructor's initial_accumulator_value only.
    defaults = {k: v for k, v in groups[0].items() if k != "params"}
    opt = OPTIMIZERS[case["algo"]](groups, foreach=False, **defaults)
    sched = make_scheduler(opt, case["schedule"])

    worst = {"params": 0.0, "lr": 0.0, "norm": 0.0}
    same = count = 0
    for s in range(steps):
        for p, g, has in zip(params, split(grads[s]), case["has_grad"][s]):
            p.grad = torch.tensor(g.copy()) if has else None
        if case["clip"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, case["clip"]))
            err = abs(float(our_norms[s]) - norm) / max(abs(norm), 1e-30)
            worst["norm"] = max(worst["norm"], err)
        for gi, group in enumerate(opt.param_groups):
            ref = group["lr"]
            err = abs(our_lrs[s, gi] - ref) / max(abs(ref), 1e-30)
            worst["lr"] = max(worst["lr"], err)
        opt.step()
        if sched is not None:
            sched.step()
        for p, o in zip(params, split(ours[s])):
            ref = p.detach().numpy()
            worst["params"] = max(worst["params"], rel_err(o, ref))
            same += int(np.sum(o.view(np.uint32) == ref.view(np.uint32)))
            count += o.size
    return worst, same, count


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    warnings.simplefilter("ignore")  # SequentialLR's step(0) deprecation notice
    torch.set_num_threads(1)
    d = sys.argv[1]
    files = sorted(glob.glob(os.path.join(d, "*.json")))
    if not files:
        print("optim_parity: no cases in " + d)
        return 1
    failed = 0
    overall = {"params": (0.0, ""), "lr": (0.0, ""), "norm": (0.0, "")}
    for path in files:
        with open(path) as f:
            case = json.load(f)
        try:
            worst, same, count = run_case(d, case)
        except Exception as e:  # a broken case is a failure, not a crash
            print(f"FAIL {case['name']}: {type(e).__name__}: {e}")
            failed += 1
            continue
        bad = [k for k, v in worst.items() if not v <= TOL]
        status = "FAIL" if bad else "ok  "
        failed += bool(bad)
        print(f"{status} {case['name']:<34} params {worst['params']:.2e}  lr {worst['lr']:.2e}  "
              f"norm {worst['norm']:.2e}  bit-identical {same}/{count}")
        for k, v in worst.items():
            if v > overall[k][0]:
                overall[k] = (v, case["name"])
    print("worst: " + ", ".join(f"{k} {v:.2e} ({n or '-'})" for k, (v, n) in overall.items()))
    print(f"optim_parity: {len(files) - failed}/{len(files)} cases within {TOL:g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
