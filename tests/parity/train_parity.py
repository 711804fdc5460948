#!/usr/bin/env python3
"""Training parity: every step of traind's training loop against PyTorch.

usage: train_parity.py [-v] DUMP_DIR     (-v: also the flips of near-tie steps)

train_dump (C) writes, per run <workload>.<optimizer>:
  <run>.data.safetensors       x.<k>, y.<k>: the batch of step k; metadata:
                               workload, optimizer (torch.optim JSON), steps
  <run>.state.<k>.safetensors  the checkpoint (td_checkpoint_state: model
                               state_dict + "optimizer/..." keys) after k
                               steps; for k >= 1 the loss of step k-1 in the
                               metadata "__parity__.loss"
  <run>.grad.<k>.safetensors   our gradient of step k, per parameter name
  <run>.eval.safetensors       eval_out: the final model in eval mode on x.0

Why per step: end to end, float32 training does not follow a float64 oracle
for long. A max-pool window whose two largest inputs are a few ulps apart, or
a ReLU input a few ulps from 0, takes a different branch in float32 than in
float64; the gradient jumps there, and adaptive optimizers amplify the
difference about tenfold per step. PyTorch's own float32 run diverges the
same way. So each step k is replayed from OUR state k, and only that step is
compared, in float64:

1. The twin (train_models.py) loads our model state k with strict=True: every
   checkpoint must load into PyTorch as it is. torch.optim is built from the
   run's JSON config; our "optimizer/param_groups" must equal its
   param_groups (torch's keys; the only keys of torch's we lack are switches
   such as foreach or maximize, at their defaults), and our optimizer state
   goes through torch's own load_state_dict key for key
   ("optimizer/state.<i>.<buffer>" -> state[i][buffer]): our optimizer
   checkpoint layout is PyTorch's.
2. Forward and backward on batch k: the loss, and our gradient of every
   parameter, are compared.
3. torch.optim steps with that gradient (see below for the exceptions), and
   the result is compared with our state k+1: every parameter and buffer
   (BatchNorm running stats and num_batches_tracked too), every optimizer
   buffer, every step count, and the set of optimizer state keys.
4. Finally our final model's eval-mode output against torch's eval forward
   from our final state (BatchNorm running statistics); limit EVAL_TOL.

Errors are normwise relative per tensor, ||ours - ref|| / ||ref||; limit
TOL = 1e-4 (typically 1e-7 to 1e-5: a gradient that is a long cancelling sum,
such as a BatchNorm bias's, is the largest). Two places where float32 must
disagree with float64 are recognised explicitly instead of widening TOL:

Near-ties (discontinuities). Forward hooks flag every max-pool window whose
two largest inputs differ by less than TIE of the input tensor's RMS, and
every ReLU input within TIE * RMS of 0 (exact ties are left out: they are
ReLU zeros, exact in every precision and broken the same way). Over 2.5e8
ReLU and max-pool inputs of cnn_bn and lenet, our float32 forward is off by
less than 1.1e-5 of that RMS per element (median 8e-8; torch's float32 up to
9e-6), so float32 can take the other branch only where the gap is below the
two inputs' error difference, ~2e-5: TIE = 1e-4 leaves a factor 5. Conv
models have tens to hundreds of candidates per step, yet float32 nearly
always takes float64's branch. So flips are looked for only when our
gradient differs from the reference by more than TOL: for each candidate,
smallest gap first, the forward and backward run again with the tied inputs
moved across the tie (the two largest of a window trade places, a ReLU input
changes sign), which gives the flip's exact effect on the gradient
(including a ReLU flip that reroutes the max-pool after it); the
least-squares combination of the effects so far is rounded to take-or-not.
When a set leaves every gradient within TOL, the step is a "near-tie" step
and is compared like any other, against the reference with those branches
taken; a difference the candidates cannot explain fails. A forward less
accurate than float32 would flip far more often: more than MAX_TIE_SHARE of
all steps fails. Measured: 14 of 300 (at most 3 of a run's 10). The share is
suite-wide because one run is too few steps: a slightly perturbed cnn_bn run
had 5 of 10 legitimate near-tie steps.

Null gradients. A conv bias followed by a train-mode BatchNorm does not move
the loss: its exact gradient is 0, and a float32 engine computes rounding
noise there (float64 gives ~1e-17 of the gradient norm; ours ~2e-8). For
such parameters (float64 gradient below NULL_GRAD of the gradient norm) ours
must be below NOISE of our gradient norm, and the optimizer steps with OUR
gradient, so their parameters and buffers are still compared exactly.

The adaptive optimizers run with eps = 1e-3, not torch's default; train_dump.c
says why.
"""
import copy
import glob
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

import safetensors_np as st
from train_models import make

TOL = 1e-4             # normwise relative error, per tensor
EVAL_TOL = 1e-5        # the final eval-mode output
TIE = 1e-4             # near-tie gap, relative to the RMS of the layer's input
MAX_FLIP_TRIES = 40    # candidates tried per step, smallest gap first
MAX_TIE_SHARE = 0.15   # share of all steps that may be near-ties
NULL_GRAD = 1e-10      # float64 gradient below this share of the norm: exactly 0
NOISE = 1e-6           # our gradient of such a parameter, relative to our norm

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
# param_groups keys of torch's that select an implementation, not the math.
TORCH_SWITCHES = {"foreach", "maximize", "capturable", "differentiable", "fused"}
OPT_PREFIX = "optimizer/"


class Mismatch(Exception):
    """A structural difference (keys, layout, config): the run fails."""


def norm(a):
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64)))


def rel_err(ours, ref):
    """Normwise relative error ||ours - ref|| / ||ref|| (absolute if ref is 0)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        return float("inf")
    d = norm(ours - ref)
    return d / norm(ref) if norm(ref) > 0 else d


def to_torch(a):
    t = torch.from_numpy(np.array(a))
    return t.double() if t.is_floating_point() else t


# ---- checkpoints ------------------------------------------------------------

def load_checkpoint(path):
    """(model state_dict as torch tensors, {(i, buffer): array}, metadata)."""
    tensors, meta = st.load(path)
    meta = meta or {}
    model, opt = {}, {}
    for k, v in tensors.items():
        if "/" not in k:  # module keys never hold '/'; "rng/" keys are not torch's
            model[k] = to_torch(v)
        if not k.startswith(OPT_PREFIX):
            continue
        rest = k[len(OPT_PREFIX):].split(".")
        if len(rest) != 3 or rest[0] != "state" or not rest[1].isdigit():
            raise Mismatch(f"unexpected optimizer key '{k}'")
        opt[(int(rest[1]), rest[2])] = v
    return model, opt, meta


def check_param_groups(ours, theirs):
    """Our param_groups against torch's for the same configuration."""
    if len(ours) != len(theirs):
        raise Mismatch(f"{len(ours)} param groups, torch has {len(theirs)}")
    for g, (a, b) in enumerate(zip(ours, theirs)):
        for key, v in a.items():
            want = b["lr"] if key == "initial_lr" else b.get(key, "<absent>")
            if isinstance(want, tuple):
                want = list(want)
            if v != want:
                raise Mismatch(f"param_groups[{g}].{key} is {v}, torch has {want}")
        for key, v in b.items():
            if key not in a and not (key in TORCH_SWITCHES and not v):
                raise Mismatch(f"param_groups[{g}] lacks torch's '{key}' ({v})")


def make_optimizer(model, cfg, opt_state, meta, steps_done):
    """torch.optim for the run's config, loaded with our optimizer state."""
    cfg = dict(cfg)
    kind = cfg.pop("kind")
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    params = list(model.parameters())
    opt = OPTIMIZERS[kind](params, **cfg)
    if meta.get(OPT_PREFIX + "optimizer") != kind:
        raise Mismatch(f"optimizer/optimizer is {meta.get(OPT_PREFIX + 'optimizer')!r}")
    if meta.get(OPT_PREFIX + "step") != str(steps_done):
        raise Mismatch(f"optimizer/step is {meta.get(OPT_PREFIX + 'step')!r}, expected "
                       f"{steps_done}")
    if json.loads(meta[OPT_PREFIX + "lr_schedule"])["kind"] != "constant":
        raise Mismatch("lr_schedule is not constant")
    groups = json.loads(meta[OPT_PREFIX + "param_groups"])
    sd = opt.state_dict()
    check_param_groups(groups, sd["param_groups"])
    state = {}
    for (i, name), v in opt_state.items():
        if i >= len(params):
            raise Mismatch(f"optimizer state for parameter {i}; the model has {len(params)}")
        if name != "step" and v.shape != tuple(params[i].shape):
            raise Mismatch(f"optimizer/state.{i}.{name} is {v.shape}, parameter {i} is "
                           f"{tuple(params[i].shape)}")
        state.setdefault(i, {})[name] = int(v) if name == "step" else to_torch(v)
    # Before the first step our state is empty; torch's Adagrad creates its
    # state eagerly, which the update keeps.
    for i, s in sd["state"].items():
        state[i] = {**s, **state.get(i, {})}
    opt.load_state_dict({"state": state, "param_groups": groups})
    return opt


def optimizer_state(opt):
    """{(i, buffer): float64 array or int step} from torch's state_dict."""
    out = {}
    for i, s in opt.state_dict()["state"].items():
        for name, v in s.items():
            out[(i, name)] = int(v) if name == "step" else v.double().numpy()
    return out


# ---- near-ties ----------------------------------------------------------------

def rms(x):
    return max(float(x.pow(2).mean().sqrt()), 1e-300)


class NearTies:
    """Forward hooks on MaxPool2d and ReLU that record one forward's near-tie
    candidates: (relative gap, module index, what the other branch changes)."""

    def __init__(self, model):
        self.found = []
        self.handles = []
        for i, m in enumerate(model.modules()):
            if isinstance(m, nn.MaxPool2d):
                k, s = m.kernel_size, m.stride
                if k != s or m.padding != 0 or m.dilation != 1 or m.ceil_mode:
                    raise Mismatch(f"near-tie detection supports only MaxPool2d(k), not {m}")
                self.handles.append(m.register_forward_hook(
                    lambda m, inputs, out, i=i: self.pool(i, m.kernel_size, inputs[0].detach())))
            elif isinstance(m, nn.ReLU):
                self.handles.append(m.register_forward_hook(
                    lambda m, inputs, out, i=i: self.relu(i, inputs[0].detach())))

    def pool(self, i, k, x):
        n, c, h, w = x.shape
        win = x[:, :, :h // k * k, :w // k * k].reshape(n, c, h // k, k, w // k, k)
        win = win.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)
        top, idx = win.topk(2, dim=-1)
        gap = top[..., 0] - top[..., 1]
        rel = gap / rms(x)
        for pos in ((gap > 0) & (rel < TIE)).nonzero().tolist():
            at = [tuple(pos[:2]) + (pos[2] * k + j // k, pos[3] * k + j % k)
                  for j in idx[tuple(pos)].tolist()]
            # the other branch: the two largest inputs trade places
            change = [(at[0], float(top[tuple(pos)][1])), (at[1], float(top[tuple(pos)][0]))]
            self.found.append((float(rel[tuple(pos)]), i, f"pool{pos}", change))

    def relu(self, i, x):
        rel = x.abs() / rms(x)
        for pos in ((x != 0) & (rel < TIE)).nonzero().tolist():
            # the other branch: the input on the other side of 0
            self.found.append((float(rel[tuple(pos)]), i, f"relu{pos}",
                               [(tuple(pos), -float(x[tuple(pos)]))]))

    def remove(self):
        for h in self.handles:
            h.remove()


def flip_effect(model, cand, batch, grads):
    """How every parameter's gradient changes when near-tie `cand` takes its
    other branch: the forward and backward again, with the tied inputs moved
    across the tie (by the gap, itself below TIE: the continuous part of the
    change is negligible). grads: the float64 gradients without the flip.
    model is a spare copy: its BatchNorm running statistics move."""
    _, index, _, change = cand
    module = list(model.modules())[index]

    def other_branch(m, inputs):
        x = inputs[0]
        shift = torch.zeros_like(x)  # a constant, so the moved inputs keep their gradients
        for pos, v in change:
            shift[pos] = v - x[pos].item()
        return (x + shift,)

    handle = module.register_forward_pre_hook(other_branch)
    params = list(model.parameters())
    try:
        loss = nn.CrossEntropyLoss()(model(batch[0]), batch[1])
        flipped = torch.autograd.grad(loss, params)
    finally:
        handle.remove()
    return [f.numpy() - g for f, g in zip(flipped, grads)]


def explain(ties, model, batch, live, ours, ref):
    """Finds the near-tie flips that explain ours - ref: a set whose summed
    effects leave every gradient within TOL. Candidates are tried smallest
    gap first (at most MAX_FLIP_TRIES of them); after each, the least-squares
    combination of those seen so far is rounded to take-or-not and checked.
    On success ref (float64 gradients, all parameters) is updated in place
    and the flips' names are returned; otherwise ref is left alone and []
    is returned. Only the parameters in `live` (not null) are compared."""
    scale = [norm(ref[i]) for i in live]
    if max(norm(ours[i] - ref[i]) / s for i, s in zip(live, scale)) <= TOL:
        return []
    sizes = [ref[i].size for i in live]
    resid = np.concatenate([((ours[i] - ref[i]) / s).ravel() for i, s in zip(live, scale)])
    grads = [r.copy() for r in ref]
    cols, effects, tried = [], [], []
    for cand in sorted(ties.found, key=lambda c: c[0])[:MAX_FLIP_TRIES]:
        d = flip_effect(model, cand, batch, grads)
        if max(norm(d[i]) / s for i, s in zip(live, scale)) < TOL / 4:
            continue  # cannot matter at TOL
        cols.append(np.concatenate([(d[i] / s).ravel() for i, s in zip(live, scale)]))
        effects.append(d)
        tried.append(cand)
        m = np.stack(cols, axis=1)
        take = np.round(np.clip(np.linalg.lstsq(m, resid, rcond=None)[0], 0, 1))
        if not take.any():
            continue
        left = np.split(resid - m @ take, np.cumsum(sizes)[:-1])
        if max(norm(t) for t in left) <= TOL:
            for j in np.flatnonzero(take):
                for i in live:
                    ref[i] += effects[j][i]
            return [f"{tried[j][2]} gap {tried[j][0]:.1e}" for j in np.flatnonzero(take)]
    return []


# ---- one step ---------------------------------------------------------------

def check_step(meta, cfg, data, d, run, k):
    """(rows (name, error, limit), flips taken, null-gradient parameters) of step k."""
    model_sd, opt_state, smeta = load_checkpoint(f"{d}/{run}.state.{k}.safetensors")
    next_sd, next_opt, nmeta = load_checkpoint(f"{d}/{run}.state.{k + 1}.safetensors")
    grads, _ = st.load(f"{d}/{run}.grad.{k}.safetensors")
    model, _ = make(meta["workload"])
    model = model.double()
    model.load_state_dict(model_sd, strict=True)
    opt = make_optimizer(model, cfg, opt_state, smeta, k)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    if sorted(grads) != sorted(names):
        raise Mismatch(f"the gradient file has {sorted(grads)}, the parameters are {names}")

    model.train()
    spare = copy.deepcopy(model)  # for near-tie flips: keeps our statistics clean
    batch = (to_torch(data[f"x.{k}"]), to_torch(data[f"y.{k}"]))
    ties = NearTies(model)
    loss = nn.CrossEntropyLoss()(model(batch[0]), batch[1])
    loss.backward()
    ties.remove()
    rows = [("loss", rel_err(float(nmeta["__parity__.loss"]), loss.item()), TOL)]

    ref = [p.grad.numpy().copy() for p in params]
    ours = [np.asarray(grads[n], dtype=np.float64) for n in names]
    total = norm(np.concatenate([r.ravel() for r in ref]))
    total_ours = norm(np.concatenate([o.ravel() for o in ours]))
    null = [i for i, r in enumerate(ref) if norm(r) <= NULL_GRAD * total]
    for i in null:  # rounding noise in any engine: ours must be that small, and is used
        rows.append((f"grad {names[i]} (null: |ours| / |our gradient|)",
                     norm(ours[i]) / total_ours, NOISE))
        ref[i] = ours[i].copy()
    live = [i for i in range(len(names)) if i not in null]
    taken = explain(ties, spare, batch, live, ours, ref)
    for i in live:
        rows.append((f"grad {names[i]}", rel_err(ours[i], ref[i]), TOL))

    for p, g in zip(params, ref):
        p.grad = torch.from_numpy(g)
    opt.step()
    state = {key: v.double().numpy() if v.is_floating_point() else v.numpy()
             for key, v in model.state_dict().items()}
    if sorted(state) != sorted(next_sd):
        raise Mismatch(f"state {k + 1} has keys {sorted(next_sd)}, torch {sorted(state)}")
    for key, v in state.items():
        rows.append((key, rel_err(next_sd[key].numpy(), v), TOL))

    # Every parameter has a gradient at every step, so every one has step
    # k + 1. torch's SGD keeps no step: ours loads into it and is ignored.
    theirs = optimizer_state(opt)
    for i in range(len(params)):
        if int(next_opt.get((i, "step"), -1)) != k + 1:
            raise Mismatch(f"optimizer/state.{i}.step is {next_opt.get((i, 'step'))} after "
                           f"{k + 1} steps")
        if cfg["kind"] != "sgd" and theirs.get((i, "step")) != k + 1:
            raise Mismatch(f"torch's step of parameter {i} is {theirs.get((i, 'step'))} after "
                           f"{k + 1} steps")
    buffers = sorted(key for key in theirs if key[1] != "step")
    ours_buffers = sorted(key for key in next_opt if key[1] != "step")
    if buffers != ours_buffers:
        diff = sorted(set(buffers) ^ set(ours_buffers))[0]
        raise Mismatch(f"optimizer/state.{diff[0]}.{diff[1]} is in "
                       f"{'torch' if diff in buffers else 'ours'} only")
    for i, name in buffers:
        rows.append((f"optimizer/state.{i}.{name}",
                     rel_err(next_opt[(i, name)], theirs[(i, name)]), TOL))
    return rows, taken, [names[i] for i in null]


def check_eval(meta, data, d, run):
    """Our final model's eval-mode output against torch's from our final state."""
    model_sd, _, _ = load_checkpoint(f"{d}/{run}.state.{meta['steps']}.safetensors")
    ours, _ = st.load(f"{d}/{run}.eval.safetensors")
    model, _ = make(meta["workload"])
    model = model.double()
    model.load_state_dict(model_sd, strict=True)
    model.eval()
    with torch.no_grad():
        ref = model(to_torch(data["x.0"])).numpy()
    return "eval output", rel_err(ours["eval_out"], ref), EVAL_TOL


def check_run(d, run):
    """(failures, worst (error, where), near-tie steps {k: flips}, null parameters, steps)."""
    data, meta = st.load(f"{d}/{run}.data.safetensors")
    cfg = json.loads(meta["optimizer"])
    steps = int(meta["steps"])
    bad, worst, ties, nulls = [], (0.0, ""), {}, set()
    for k in range(steps):
        rows, taken, null = check_step(meta, cfg, data, d, run, k)
        nulls.update(null)
        if taken:
            ties[k] = taken
        for name, e, lim in rows:
            if not e <= lim:
                bad.append(f"step {k} {name}: {e:.2e} > {lim:.0e}")
            if e > worst[0] and "(null" not in name:  # those are not relative errors
                worst = (e, f"step {k} {name}")
    name, e, lim = check_eval(meta, data, d, run)
    if not e <= lim:
        bad.append(f"{name}: {e:.2e} > {lim:.0e}")
    worst = max(worst, (e, name))
    return bad, worst, ties, sorted(nulls), steps


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    if len(args) != 1:
        print("usage: train_parity.py [-v] DUMP_DIR", file=sys.stderr)
        return 2
    d = args[0]
    torch.set_num_threads(1)
    runs = sorted(os.path.basename(p)[:-len(".data.safetensors")]
                  for p in glob.glob(os.path.join(d, "*.data.safetensors")))
    failures, n_ties, n_steps, t0 = 0, 0, 0, time.time()
    for run in runs:
        try:
            bad, worst, ties, nulls, steps = check_run(d, run)
        except Exception as e:  # noqa: BLE001 - a broken checkpoint fails the run
            bad, worst, ties, nulls, steps = [f"{type(e).__name__}: {e}"], (float("inf"), "-"), \
                {}, [], 0
        failures += bool(bad)
        n_ties += len(ties)
        n_steps += steps
        print(f"{'FAIL' if bad else 'ok  '} {run:20s} worst {worst[0]:.1e} ({worst[1]}); "
              f"near-tie steps {len(ties)}{' ' + str(sorted(ties)) if ties else ''}"
              + (f"; null gradients: {' '.join(nulls)}" if verbose and nulls else "")
              + "".join(f"\n     step {k}: {', '.join(f)}" for k, f in ties.items() if verbose)
              + "".join(f"\n     {b}" for b in bad[:10])
              + (f"\n     ... {len(bad) - 10} more" if len(bad) > 10 else ""))
    too_many = n_ties > MAX_TIE_SHARE * n_steps
    print(f"train parity: {len(runs)} runs, {n_ties} of {n_steps} steps near-ties"
          + (f", more than {MAX_TIE_SHARE:.0%}: FAIL" if too_many else "")
          + f", {time.time() - t0:.0f} s")
    print(f"{len(runs) - failures} passed, {failures} failed"
          + ("; too many near-tie steps" if too_many else ""))
    return 1 if failures or too_many or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
