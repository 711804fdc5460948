#!/usr/bin/env python3
"""The main job (`make demo`): train over RPC, check in PyTorch, race PyTorch.

usage: demo.py [--daemon build/server/traind] [--epochs 30] [--min-accuracy 0.96]
               [--max-ratio R]

1. starts the traind daemon on a free loopback port with a temporary data dir;
2. trains a 64-128-10 MLP on the handwritten digits (80/20 split; SGD lr 0.1,
   momentum 0.9, batch 32) over gRPC with the Python client, showing progress
   and per-epoch loss, and reports the held-out test accuracy;
3. downloads the checkpoint, loads it into the same PyTorch model
   (strict=True) and compares predictions on the test set;
4. runs the same training locally in PyTorch and compares wall times;
5. stops the daemon with SIGTERM and checks it exits 0.

Exits 1 if the accuracy is below --min-accuracy, PyTorch disagrees, the daemon
does not stop cleanly, or (only when given) the time ratio exceeds --max-ratio.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import digits
import mlp_digits

traind = digits.import_traind()
from traind import optim  # noqa: E402

EPOCHS, BATCH, LR, MOMENTUM, SEED = 30, 32, 0.1, 0.9, 0


class Daemon:
    """build/server/traind on 127.0.0.1:<free port>; stop() sends SIGTERM."""

    def __init__(self, binary, data_dir):
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self.log, self.address, ready = [], None, threading.Event()

        def read():  # keep draining stderr so the daemon never blocks on it
            for line in self.proc.stderr:
                self.log.append(line.rstrip())
                m = re.search(r"listening on (\S+:\d+)", line)
                if m and not ready.is_set():
                    self.address = m.group(1)
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not ready.wait(60) or self.address is None:
            self.proc.kill()
            raise SystemExit("traind did not start:\n" + "\n".join(self.log))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        self.reader.join(5)
        return code


def train_in_torch(torch, x_train, y_train, x_test, y_test, epochs):
    """The same training in local PyTorch: (wall seconds, test accuracy)."""
    torch.manual_seed(SEED)
    model = mlp_digits.build_spec().to_torch()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    for _ in range(epochs):  # what fit() does: shuffle, step, loss and accuracy per epoch
        order = torch.from_numpy(rng.permutation(len(x)))
        loss_sum, correct = 0.0, 0
        for b in range(0, len(x), BATCH):
            idx = order[b:b + BATCH]
            xb, yb = x[idx], y[idx]
            out = model(xb)
            loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == yb).sum().item()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    return seconds, acc


def main():
    root = digits.ROOT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemon", default=os.environ.get(
        "TRAIND_BIN", os.path.join(root, "build", "server", "traind")))
    ap.add_argument("--data", default=digits.DEFAULT_CSV)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--min-accuracy", type=float, default=0.96)
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="fail if traind's wall time exceeds this multiple of PyTorch's")
    args = ap.parse_args()
    ok = True

    x_train, y_train, x_test, y_test = digits.split(*digits.load(args.data))
    print(f"digits: {len(x_train) + len(x_test)} images, {len(x_train)} for training, "
          f"{len(x_test)} held out")
    with tempfile.TemporaryDirectory(prefix="traind-demo-") as tmp:
        daemon = Daemon(args.daemon, os.path.join(tmp, "data"))
        print(f"traind: pid {daemon.proc.pid}, listening on {daemon.address}")
        try:
            client = traind.connect(daemon.address)
            print(f"health: {client.health()}")
            spec = mlp_digits.build_spec()
            model = client.create_model(spec, optimizer=optim.SGD(lr=LR, momentum=MOMENTUM),
                                        seed=SEED, name="digits-mlp")
            print(f"session {model.session_id}: {spec!r}".replace("\n", "\n  "))
            print(f"training over RPC: {args.epochs} epochs, batch {BATCH}, SGD lr {LR} "
                  f"momentum {MOMENTUM}")
            history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=BATCH, seed=SEED)
            test = model.evaluate(x_test, y_test)
            print(f"traind: {history.steps} steps in {history.train_time:.2f} s, "
                  f"test accuracy {test['accuracy']:.2%} "
                  f"({round(test['accuracy'] * len(x_test))}/{len(x_test)})")
            if test["accuracy"] < args.min_accuracy:
                print(f"FAIL: test accuracy below {args.min_accuracy:.0%}")
                ok = False
            logits = model.predict(x_test)
            path = os.path.join(tmp, "digits_mlp.safetensors")
            size = model.save(path)
            print(f"checkpoint: {size} bytes, keys {sorted(model.state_dict())}")
            model.close()
            client.close()
        finally:
            code = daemon.stop()
        print(f"traind stopped by SIGTERM: exit code {code}")
        ok &= code == 0

        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: skipping the PyTorch check and the race")
            return 0 if ok else 1
        with open(path, "rb") as f:
            state, _ = traind.safetensors.loads(f.read())
        net = spec.to_torch()
        net.load_state_dict(traind.torch_state_dict(state), strict=True)
        with torch.no_grad():
            ours = net.eval()(torch.from_numpy(x_test)).numpy()
        agree = float(np.mean(ours.argmax(1) == logits.argmax(1)))
        print(f"PyTorch loaded the checkpoint (strict=True): predictions agree with traind on "
              f"{agree:.1%} of the test images, largest logit difference "
              f"{np.abs(ours - logits).max():.1e}")
        ok &= agree == 1.0

        seconds, acc = train_in_torch(torch, x_train, y_train, x_test, y_test, args.epochs)
        ratio = history.train_time / seconds
        print(f"local PyTorch, same training: {seconds:.2f} s, test accuracy {acc:.2%}")
        print(f"wall time: traind over RPC {history.train_time:.2f} s vs local PyTorch "
              f"{seconds:.2f} s: ratio {ratio:.2f}x (target: within 1.5x)")
        if args.max_ratio is not None and ratio > args.max_ratio:
            print(f"FAIL: ratio above {args.max_ratio}x")
            ok = False
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
