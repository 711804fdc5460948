"""RemoteModel: one training session on the server, driven like a torch module.

    model = client.create_model(spec, optimizer=optim.SGD(lr=0.1), seed=0)
    with model.record():                          # MegEngine's `with gm:`
        out, loss = model.forward(x, target=y, loss="cross_entropy")
        model.backward()                          # gradients accumulate
    model.step()                                  # optimizer.step().clear_grad()
    r = model.train_step(x, y)                    # all of it in one round trip
    history = model.fit(x, y, epochs=10, batch_size=32, validation=0.2)
    model.save("run.safetensors")                 # loads into torch with strict=True

Inputs are numpy arrays (float32, or int64 for class indices and token ids);
other numeric arrays, lists and CPU torch tensors are converted, anything else
is a TypeError. Outputs are numpy arrays. Failed calls raise the
traind.TraindError subclass of their status (and change nothing on the server).
"""
import collections
import contextlib
import math
import os
import sys
import time
from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from . import errors, safetensors
from .client import CHUNK_SIZE
from .nn import loss_spec
from .tensors import as_array, from_proto, to_proto
from .v1 import trainer_pb2 as pb

StepResult = namedtuple("StepResult", "step lr grad_norm")
StepResult.__doc__ = "step(): steps taken (this one included), the LR it used, the gradient norm."
TrainStepResult = namedtuple("TrainStepResult", "loss step lr grad_norm output")
TrainStepResult.__doc__ = ("train_step(): the batch's loss, steps taken, the LR used, the "
                           "gradient norm before clipping, the output (with return_output).")
LoadResult = namedtuple("LoadResult", "missing_keys unexpected_keys")
LoadResult.__doc__ = "load(): keys the checkpoint lacked / had extra (torch's _IncompatibleKeys)."

_DTYPE_NAMES = {pb.FLOAT32: "float32", pb.INT64: "int64"}
# Keys a traind checkpoint may hold beyond the model's own state dict.
TRAIND_KEY_PREFIXES = ("optimizer/", "rng/")


@dataclass
class SessionInfo:
    session_id: str
    name: str
    num_parameters: int
    step: int
    training: bool
    optimizer: str
    lr: float
    recorded: bool
    has_grad: bool
    parameters: list = field(default_factory=list)  # [(key, shape tuple, dtype name)]
    created_unix_ms: int = 0
    last_used_unix_ms: int = 0
    memory_bytes: int = 0  # parameters, gradients, optimizer state, a recording
    saved_step: int = -1  # the step of the server's last completed save of it (-1: none)
    saved_unix_ms: int = 0
    save_error: str = ""  # why the server's last save of it failed ("" when it did not)

    @classmethod
    def from_proto(cls, m):
        return cls(session_id=m.session_id, name=m.name, num_parameters=m.num_parameters,
                   step=m.step, training=m.training, optimizer=m.optimizer, lr=m.lr,
                   recorded=m.recorded, has_grad=m.has_grad,
                   parameters=[(p.name, tuple(p.shape), _DTYPE_NAMES.get(p.dtype, str(p.dtype)))
                               for p in m.parameters],
                   created_unix_ms=m.created_unix_ms, last_used_unix_ms=m.last_used_unix_ms,
                   memory_bytes=m.memory_bytes, saved_step=m.saved_step,
                   saved_unix_ms=m.saved_unix_ms, save_error=m.save_error)


class History(dict):
    """fit()'s per-epoch record: history["loss"], ["accuracy"], ["val_loss"],
    ["val_accuracy"] (lists, one value per epoch; accuracies only for
    classification losses, validation ones only with validation data), plus
    .train_time (seconds spent in fit) and .steps (optimizer steps taken)."""

    train_time = 0.0
    steps = 0
    last_step = 0       # the session's step count after the last batch
    reordered = False   # True if the server ever ran pipelined steps out of order


def torch_state_dict(state):
    """The part of a traind state dict that torch's load_state_dict takes, as
    torch tensors (drops traind's "optimizer/" and "rng/" entries)."""
    import torch
    return {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()
            if not k.startswith(TRAIND_KEY_PREFIXES)}


class RemoteModel:
    """A session on a traind server. Created by Client.create_model (or
    Client.model(session_id) for an existing one). A context manager: leaving
    the block closes the session."""

    def __init__(self, client, session_id, spec=None):
        self.client = client
        self.session_id = session_id
        self.spec = spec  # the traind.nn spec it was created from, when known
        self._recording = 0
        self._closed = False

    def __repr__(self):
        return f"RemoteModel(session_id={self.session_id!r})"

    # ---- one step at a time -------------------------------------------------

    @contextlib.contextmanager
    def record(self):
        """MegEngine's `with gm:`: forward() calls inside record for backward()
        unless they pass grad=False."""
        self._recording += 1
        try:
            yield self
        finally:
            self._recording -= 1

    def forward(self, x, target=None, loss=None, grad=None):
        """Runs the model on x. Returns the output, or (output, loss value) when
        `loss` is given (then `target` is required). grad=True records for
        backward(); the default is True inside record() and False outside."""
        if grad is None:
            grad = self._recording > 0
        req = pb.ForwardRequest(session_id=self.session_id, input=to_proto(x, "input"),
                                grad=bool(grad))
        if loss is not None:
            if target is None:
                raise TypeError("forward: a loss needs a target")
            req.loss.CopyFrom(loss_spec(loss).to_proto())
        if target is not None:
            req.target.CopyFrom(to_proto(target, "target"))
        resp = self.client._call("Forward", req)
        out = from_proto(resp.output)
        return (out, resp.loss) if loss is not None else out

    __call__ = forward

    def backward(self, grad_output=None):
        """Backpropagates the last recorded forward (its loss, or `grad_output`
        = dLoss/dOutput); gradients accumulate until step() or clear_grad().
        Returns the L2 norm of all accumulated gradients."""
        req = pb.BackwardRequest(session_id=self.session_id)
        if grad_output is not None:
            req.grad_output.CopyFrom(to_proto(grad_output, "grad_output"))
        return self.client._call("Backward", req).grad_norm

    def step(self, keep_grad=False):
        """One optimizer update; clears the gradients unless keep_grad."""
        r = self.client._call("Step", pb.StepRequest(session_id=self.session_id,
                                                     keep_grad=keep_grad))
        return StepResult(r.step, r.lr, r.grad_norm)

    def clear_grad(self):
        """Drops the accumulated gradients (and a recording not yet backpropagated)."""
        self.client._call("ClearGrad", pb.ClearGradRequest(session_id=self.session_id))

    def train_step(self, x, y, loss="cross_entropy", return_output=False):
        """forward + loss + backward + step + clear_grad in one round trip."""
        r = self.client._call("TrainStep", self._train_step_request(
            to_proto(x, "input"), to_proto(y, "target"), loss_spec(loss).to_proto(),
            return_output))
        return TrainStepResult(r.loss, r.step, r.lr, r.grad_norm,
                               from_proto(r.output) if return_output else None)

    def _train_step_request(self, x, y, loss, return_output):
        return pb.TrainStepRequest(session_id=self.session_id, input=x, target=y, loss=loss,
                                   return_output=return_output)

    def train(self, mode=True):
        """Train mode (dropout on, batch norm uses batch statistics); returns self."""
        self.client._call("SetTraining", pb.SetTrainingRequest(session_id=self.session_id,
                                                               training=bool(mode)))
        return self

    def eval(self):
        """Eval mode; returns self."""
        return self.train(False)

    # ---- checkpoints ----------------------------------------------------------

    def _chunks(self, include_optimizer):
        return self.client._stream_out("StateDict", pb.StateDictRequest(
            session_id=self.session_id, include_optimizer=include_optimizer))

    def state_dict_bytes(self, include_optimizer=False):
        """The checkpoint as safetensors bytes (streamed in 1 MiB chunks)."""
        buf = bytearray()
        for chunk in self._chunks(include_optimizer):
            buf += chunk.data
        return bytes(buf)

    def state_dict(self, include_optimizer=False):
        """{key: numpy array} with PyTorch's state_dict keys and layouts (plus
        traind's "optimizer/" and, for dropout, "rng/" entries; see
        traind.torch_state_dict)."""
        tensors, _ = safetensors.loads(self.state_dict_bytes(include_optimizer))
        return tensors

    def save(self, path, include_optimizer=False):
        """Downloads the checkpoint to `path` (a safetensors file, written to a
        temporary name and renamed, so `path` is never half-written). Returns
        its size in bytes. include_optimizer: also the optimizer's state, for
        an exact resume with load()."""
        path = os.fspath(path)
        tmp = f"{path}.part-{os.getpid()}"
        size = 0
        try:
            with open(tmp, "wb") as f:
                for chunk in self._chunks(include_optimizer):
                    f.write(chunk.data)
                    size += len(chunk.data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return size

    def load(self, source, strict=True):
        """Uploads a checkpoint: a path to a safetensors file, its bytes, or a
        state dict {key: numpy array or torch tensor}. strict: missing or
        unexpected keys are an error (traind.InvalidArgument); otherwise they
        are returned. All or nothing. A file with "optimizer/" keys also
        restores the optimizer."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                data = f.read()
        elif isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif isinstance(source, dict):
            data = safetensors.dumps(source)
        else:
            raise TypeError(f"load: expected a path, bytes or a state dict, got "
                            f"{type(source).__name__}")
        r = self.client._stream_in("LoadStateDict", self._upload(data, strict))
        return LoadResult(list(r.missing_keys), list(r.unexpected_keys))

    load_state_dict = load

    def _upload(self, data, strict):
        yield pb.LoadStateDictRequest(session_id=self.session_id, strict=bool(strict),
                                      data=data[:CHUNK_SIZE])
        for i in range(CHUNK_SIZE, len(data), CHUNK_SIZE):
            yield pb.LoadStateDictRequest(data=data[i:i + CHUNK_SIZE])

    def to_torch(self):
        """A torch.nn.Module of the same architecture holding this model's
        current weights (loaded with strict=True), in the same train/eval mode.
        Needs the spec (models from create_model) and PyTorch."""
        if self.spec is None:
            raise TypeError("to_torch: this RemoteModel was not created from a traind.nn spec")
        module = self.spec.to_torch()
        module.load_state_dict(torch_state_dict(self.state_dict()), strict=True)
        return module.train(self.info().training)

    # ---- session --------------------------------------------------------------

    def info(self):
        """The session's SessionInfo (step, mode, LR, parameters, ...)."""
        return SessionInfo.from_proto(self.client._call(
            "GetSession", pb.GetSessionRequest(session_id=self.session_id)))

    def close(self):
        """Frees the session on the server. Closing twice is harmless."""
        if self._closed:
            return
        self.client._call("CloseSession", pb.CloseSessionRequest(session_id=self.session_id))
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except errors.NotFound:
            pass  # expired or closed elsewhere: what close() wanted anyway

    # ---- whole loops ------------------------------------------------------------

    def predict(self, x, batch_size=1024):
        """The model's outputs on x (no recording), in batches of batch_size."""
        x = as_array(x, "x")
        outs = [self.forward(x[i:i + batch_size], grad=False)
                for i in range(0, max(len(x), 1), batch_size)]
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def evaluate(self, x, y, loss="cross_entropy", batch_size=1024):
        """{"loss": mean loss, "accuracy": fraction correct (classification
        losses only)} on (x, y), in eval mode (the mode is restored after)."""
        x, y = as_array(x, "x"), as_array(y, "y")
        _check_pairs(x, y, "x", "y")
        spec = loss_spec(loss)
        was_training = self.info().training
        if was_training:
            self.eval()
        try:
            return self._evaluate(x, y, spec, batch_size)
        finally:
            if was_training:
                self.train()

    def _evaluate(self, x, y, spec, batch_size):
        total, correct, n = 0.0, 0, len(x)
        for i in range(0, n, batch_size):
            out, value = self.forward(x[i:i + batch_size], target=y[i:i + batch_size],
                                      loss=spec, grad=False)
            m = len(out)
            total += value * (m if spec.reduction == "mean" else 1)
            if spec.classification:
                correct += int(np.sum(out.argmax(axis=1) == y[i:i + batch_size]))
        result = {"loss": total / max(n, 1)}
        if spec.classification:
            result["accuracy"] = correct / max(n, 1)
        return result

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation=None,
            loss="cross_entropy", seed=None, progress="auto", pipeline=2):
        """Trains on (x, y): each epoch shuffles (unless shuffle=False) and runs
        one train_step per mini-batch (the last one may be smaller).

        validation: None, (x_val, y_val), or a fraction in (0, 1) of (x, y)
                    held out from the end (before shuffling), evaluated in eval
                    mode after every epoch.
        seed:       the shuffling's seed (None: fresh entropy).
        progress:   "auto" (a tqdm bar per epoch on a terminal, one line per
                    epoch otherwise), True (always a bar), False (silent).
        pipeline:   how many train steps may be in flight at once. The server
                    runs a session's calls one at a time in arrival order, so
                    2 (the default) lets the next batch travel while this one
                    computes, and trains exactly as 1 does (History.reordered
                    says if the server ever took them out of order). If a step
                    fails, the one sent after it may already have been applied.

        Returns a History: per-epoch "loss" and, for classification losses,
        "accuracy" (of the training batches as they were trained on), and
        "val_loss"/"val_accuracy" with validation data; .train_time in seconds.
        """
        x, y = as_array(x, "x"), as_array(y, "y")
        _check_pairs(x, y, "x", "y")
        if isinstance(validation, float):
            if not 0 < validation < 1:
                raise ValueError(f"validation: a fraction must be in (0, 1), got {validation}")
            cut = len(x) - int(round(len(x) * validation))
            x, y, validation = x[:cut], y[:cut], (x[cut:], y[cut:])
        if validation is not None:
            xv, yv = as_array(validation[0], "validation x"), as_array(validation[1],
                                                                       "validation y")
            _check_pairs(xv, yv, "validation x", "validation y")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if len(x) == 0:
            raise ValueError("fit: no training samples")
        spec = loss_spec(loss)
        loss_msg = spec.to_proto()
        rng = np.random.default_rng(seed)
        history = History(loss=[])
        if spec.classification:
            history["accuracy"] = []
        if validation is not None:
            history["val_loss"] = []
            if spec.classification:
                history["val_accuracy"] = []
        report = _Progress(progress, epochs)
        x_dtype = pb.FLOAT32 if x.dtype.kind == "f" else pb.INT64
        y_dtype = pb.FLOAT32 if y.dtype.kind == "f" else pb.INT64
        if not isinstance(pipeline, int) or pipeline < 1:
            raise ValueError(f"pipeline must be a positive int, got {pipeline!r}")
        n, n_batches = len(x), math.ceil(len(x) / batch_size)
        t0 = time.perf_counter()
        self.train()
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n) if shuffle else np.arange(n)
            xs, ys = x[order], y[order]  # one gather per epoch; batches are then views
            bar = report.epoch_bar(epoch, n_batches)
            totals = [0.0, 0, 0]  # loss sum, correct, samples seen
            pending = collections.deque()
            try:
                for b in range(n_batches):
                    xb, yb = xs[b * batch_size:(b + 1) * batch_size], ys[b * batch_size:
                                                                          (b + 1) * batch_size]
                    req = pb.TrainStepRequest(
                        session_id=self.session_id, loss=loss_msg,
                        return_output=spec.classification,
                        input=pb.Tensor(dtype=x_dtype, shape=xb.shape, data=xb.tobytes()),
                        target=pb.Tensor(dtype=y_dtype, shape=yb.shape, data=yb.tobytes()))
                    pending.append((self.client._future("TrainStep", req), yb))
                    if len(pending) >= pipeline:
                        self._fit_batch_done(*pending.popleft(), spec, totals, history, bar)
                while pending:
                    self._fit_batch_done(*pending.popleft(), spec, totals, history, bar)
            finally:
                for future, _ in pending:  # after an error: do not wait for the rest
                    future.cancel()
            loss_sum, correct = totals[0], totals[1]
            history["loss"].append(loss_sum / n)
            if spec.classification:
                history["accuracy"].append(correct / n)
            if validation is not None:
                self.eval()
                v = self._evaluate(xv, yv, spec, 1024)
                self.train()
                history["val_loss"].append(v["loss"])
                if spec.classification:
                    history["val_accuracy"].append(v["accuracy"])
            report.epoch_done(bar, epoch, {k: vals[-1] for k, vals in history.items()})
        history.train_time = time.perf_counter() - t0
        return history

    def _fit_batch_done(self, future, yb, spec, totals, history, bar):
        """Accounts one finished train step of fit()."""
        r = self.client._result(future)
        if history.steps and r.step != history.last_step + 1:
            history.reordered = True  # the server took pipelined steps out of order
        history.last_step = r.step
        history.steps += 1
        m = len(yb)
        totals[0] += r.loss * (m if spec.reduction == "mean" else 1)
        totals[2] += m
        if spec.classification:
            out = np.frombuffer(r.output.data, dtype="<f4").reshape(tuple(r.output.shape))
            totals[1] += int(np.count_nonzero(out.argmax(axis=1) == yb))
        if bar is not None:
            bar.update(1)
            if history.steps % 8 == 0:
                bar.set_postfix_str(f"loss {totals[0] / totals[2]:.4f}", refresh=False)


def _check_pairs(x, y, xname, yname):
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise ValueError(f"{xname} and {yname} must have the same first dimension, got shapes "
                         f"{x.shape} and {y.shape}")


class _Progress:
    """fit()'s output: a tqdm bar per epoch, or a line per epoch, or nothing."""

    def __init__(self, mode, epochs):
        self.epochs = epochs
        self.tqdm = None
        self.lines = bool(mode)
        if mode is True or (mode == "auto" and sys.stderr.isatty()):
            try:
                from tqdm import tqdm
                self.tqdm = tqdm
            except ImportError:  # no tqdm (Debian: python3-tqdm): plain lines
                pass

    def epoch_bar(self, epoch, total):
        if self.tqdm is None:
            return None
        width = len(str(self.epochs))
        return self.tqdm(total=total, desc=f"epoch {epoch:{width}d}/{self.epochs}", unit="batch",
                         leave=True, dynamic_ncols=True)

    def epoch_done(self, bar, epoch, last):
        text = "  ".join(f"{k} {v * 100:.2f}%" if "accuracy" in k else f"{k} {v:.4f}"
                         for k, v in last.items())
        if bar is not None:
            bar.set_postfix_str(text, refresh=True)
            bar.close()
        elif self.lines:
            width = len(str(self.epochs))
            print(f"epoch {epoch:{width}d}/{self.epochs}  {text}", flush=True)
