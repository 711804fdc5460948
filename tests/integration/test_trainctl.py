"""trainctl against the real daemon: every subcommand, --help, bad arguments (exit 2),
an unreachable server (exit 3), server errors (exit 4 with the code name), JSON spec
errors naming their path, training the digits, and checkpoints that load into torch."""
import json
import os
import pty
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

import daemon
import safetensors_np as st
from client import download, upload_requests

TRAINCTL = os.environ.get("TRAINCTL_BIN",
                          os.path.join(daemon.ROOT, "build", "clients", "c", "trainctl"))
EXAMPLES = os.path.join(daemon.ROOT, "clients", "c", "examples")
MLP_SPEC = os.path.join(EXAMPLES, "digits_mlp.json")
CNN_SPEC = os.path.join(EXAMPLES, "digits_cnn.json")
DIGITS = os.path.join(daemon.ROOT, "tests", "data", "digits.csv")
COMMANDS = ["health", "sessions", "info", "create", "train", "checkpoint", "load", "close"]
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digits():
    data = np.loadtxt(DIGITS, delimiter=",", skiprows=1, dtype=np.float32)
    return data[:, :-1] / 16.0, data[:, -1].astype(np.int64)


def torch_mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def torch_cnn():  # digits_cnn.json: named children "features" and "classifier"
    features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(OrderedDict([("features", features), ("1", nn.Flatten()),
                                      ("classifier", nn.Linear(128, 10))]))


def load_into_torch(net, path):
    """Strict load of a trainctl checkpoint, as it is (no optimizer/ or rng/ keys)."""
    net.load_state_dict(st.load_torch(path)[0], strict=True)
    return net


class TrainctlTest(daemon.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="trainctl-test-")
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text if isinstance(text, str) else json.dumps(text))
        return self.path(name)

    def ctl(self, *args, server=None, env=None, timeout=180):
        """Runs trainctl with $TRAIND_SERVER set to the test daemon."""
        e = dict(os.environ, TRAIND_SERVER=server or self.daemon.address)
        e.pop("TRAIND_TOKEN", None)
        e.update(env or {})
        r = subprocess.run([TRAINCTL, *args], env=e, capture_output=True, text=True,
                           timeout=timeout)
        for mark in daemon.SANITIZER_MARKS:
            self.assertNotIn(mark, r.stderr, f"trainctl {args}: sanitizer report\n{r.stderr}")
        return r

    def ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        self.assertEqual(r.returncode, 0, f"trainctl {args}\nstdout {r.stdout}\nstderr {r.stderr}")
        return r

    def fails(self, code, *args, contains=(), **kw):
        """Asserts exit `code`, a message on stderr holding every string of `contains`."""
        r = self.ctl(*args, **kw)
        self.assertEqual(r.returncode, code, f"trainctl {args}\nstdout {r.stdout}\n"
                                             f"stderr {r.stderr}")
        self.assertIn("trainctl", r.stderr, f"trainctl {args}: no message")
        for s in ([contains] if isinstance(contains, str) else contains):
            self.assertIn(s, r.stderr, f"trainctl {args}")
        return r

    def create(self, spec=MLP_SPEC, *args):
        sid = self.ok("create", "--spec", spec, *args).stdout.strip()
        self.assertRegex(sid, SESSION_ID)
        self.addCleanup(self.close_quietly, sid)
        return sid

    def close_quietly(self, sid):
        self.ctl("close", sid)

    def session(self, sid):
        return self.stub.GetSession(daemon.trainer_pb2.GetSessionRequest(session_id=sid))

    def open_ids(self):
        return {s.session_id for s in
                self.stub.ListSessions(daemon.trainer_pb2.ListSessionsRequest()).sessions}

    # ---- help and arguments -------------------------------------------------

    def test_help(self):
        r = self.ok("--help")
        for cmd in COMMANDS:
            self.assertIn(cmd, r.stdout)
        for word in ("--server", "TRAIND_SERVER", "--token", "TRAIND_TOKEN", "--timeout",
                     "exit codes"):
            self.assertIn(word, r.stdout)
        for cmd in COMMANDS:
            for argv in ([cmd, "--help"], [cmd, "-h"], ["help", cmd]):
                out = self.ok(*argv).stdout
                self.assertTrue(out.startswith(f"usage: trainctl {cmd}"), f"{argv}: {out}")
                self.assertIn("--server", out)
        self.assertIn("--val-split", self.ok("train", "--help").stdout)
        self.assertIn("--no-strict", self.ok("load", "--help").stdout)
        r = self.fails(2)  # no command: the usage, on stderr
        self.assertIn("usage: trainctl", r.stderr)

    def test_bad_arguments(self):
        spec, data = MLP_SPEC, DIGITS
        cases = [
            (["bogus"], "unknown command 'bogus'"),
            (["sessions", "--bogus"], "unknown option '--bogus'"),
            (["--spec", spec, "create"], "unknown option '--spec'"),  # before the command
            (["info"], "missing argument: usage: trainctl info ID"),
            (["info", "a", "b"], "unexpected argument 'b'"),
            (["close"], "missing argument"),
            (["load", "x"], "missing argument"),
            (["checkpoint", "0" * 32], "missing -o FILE"),
            (["checkpoint", "0" * 32, "-o"], "option --output needs a value"),
            (["load", "0" * 32, self.path("missing.safetensors")], "cannot open"),
            (["health", "--no-strict"], "unknown option"),
            (["load", "--no-strict=1", "a", "b"], "option --no-strict takes no value"),
            (["--timeout", "-1", "health"], "--timeout: expected seconds >= 0, got '-1'"),
            (["--timeout", "soon", "health"], "--timeout"),
            (["create"], "missing --spec"),
            (["create", "--spec", self.path("nope.json")], "nope.json"),
            (["create", "--spec", spec, "--seed", "-3"], "--seed: expected an integer"),
            (["create", "--spec", spec, "--lr", "fast"], "--lr: expected a number"),
            (["create", "--spec", spec, "--optimizer", "not json!"], "--optimizer"),
            (["create", "--spec", spec, "--optimizer", "{\"sgd\": "], "--optimizer: invalid JSON"),
            (["train", "--spec", spec], "missing --data"),
            (["train", "--data", data], "missing --spec"),
            (["train", "--spec", spec, "--data", data, "--epochs", "0"], "--epochs"),
            (["train", "--spec", spec, "--data", data, "--epochs", "x"],
             "--epochs: expected an integer in [1, 1000000], got 'x'"),
            (["train", "--spec", spec, "--data", data, "--batch-size", "0"], "--batch-size"),
            (["train", "--spec", spec, "--data", data, "--val-split", "1"], "--val-split"),
            (["train", "--spec", spec, "--data", data, "--input-shape", "3,3,3"],
             "--input-shape 3,3,3 does not hold the 64 features"),
            (["train", "--spec", spec, "--data", data, "--input-shape", "1,x"], "--input-shape"),
            (["train", "--spec", spec, "--data", self.path("none.csv")], "cannot open"),
        ]
        # None of these reaches a server: point at one that does not exist.
        dead = f"127.0.0.1:{free_port()}"
        for argv, message in cases:
            with self.subTest(argv=argv):
                self.fails(2, *argv, contains=message, server=dead)

    def test_train_needs_an_optimizer(self):
        spec = self.write("noopt.json", {"sequential": [{"linear": {"in_features": 64,
                                                                   "out_features": 10}}]})
        self.fails(2, "train", "--spec", spec, "--data", DIGITS, contains="no optimizer")

    def test_bad_csv(self):
        cases = [
            ("1,2,3\n4,5\n", "short.csv:2: 2 columns, but the first row has 3"),
            ("a,b,label\n1,2,3\n4,x,1\n", "bad.csv:3: column 2: 'x' is not a number"),
            ("1,2,0.5\n", "label (last column) must be an integer >= 0"),
            ("1,2,-1\n", "label (last column) must be an integer >= 0"),
            ("p,label\n", "no data rows"),
            ("5\n", "at least one feature and a label"),
        ]
        for i, (text, message) in enumerate(cases):
            name = message.split(":")[0] if ".csv" in message.split(":")[0] else f"c{i}.csv"
            with self.subTest(text=text):
                self.fails(2, "train", "--spec", MLP_SPEC, "--data", self.write(name, text),
                           contains=message)

    # ---- health, unreachable, server errors --------------------------------

    def test_health(self):
        r = self.ok("health")
        self.assertEqual(r.stdout, "SERVING\n")
        self.ok("--timeout", "5", "health")

    def test_server_down(self):
        addr = f"127.0.0.1:{free_port()}"
        for argv in (["health"], ["sessions"], ["info", "0" * 32], ["close", "0" * 32],
                     ["create", "--spec", MLP_SPEC],
                     ["train", "--spec", MLP_SPEC, "--data", DIGITS],
                     ["checkpoint", "0" * 32, "-o", self.path("x.safetensors")],
                     ["load", "0" * 32, MLP_SPEC]):
            with self.subTest(argv=argv):
                t0 = time.monotonic()
                self.fails(3, *argv, server=addr, contains=(f"cannot reach traind at {addr}",
                                                            "UNAVAILABLE"))
                self.assertLess(time.monotonic() - t0, 10)
        # --server wins over $TRAIND_SERVER
        self.fails(3, "--server", addr, "health", contains=addr)
        self.assertFalse(os.path.exists(self.path("x.safetensors")))

    def test_health_times_out_quickly(self):
        # A listening socket that never speaks HTTP/2: the check must give up at --timeout.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            addr = "127.0.0.1:%d" % s.getsockname()[1]
            t0 = time.monotonic()
            self.fails(3, "health", server=addr, contains=(addr, "DEADLINE_EXCEEDED"))
            self.assertLess(time.monotonic() - t0, 8)  # the default health timeout is 2 s
            t0 = time.monotonic()
            self.fails(3, "--timeout", "0.3", "sessions", server=addr, contains=addr)
            self.assertLess(time.monotonic() - t0, 5)

    def test_health_while_draining(self):
        # An upload held open across SIGTERM keeps a second daemon draining (no timing
        # involved): health is then NOT_SERVING (exit 5) and new work UNAVAILABLE (exit 3).
        d = daemon.Daemon("--grace-period", "600", "--log-level", "debug").start()
        release = threading.Event()
        self.addCleanup(d.kill)  # cleanups run last first: the stream is released, then this
        self.addCleanup(release.set)
        stub = d.stub()
        sid = self.ok("create", "--spec", MLP_SPEC, server=d.address).stdout.strip()
        data = download(stub, sid)
        requests = upload_requests(sid, data, chunk=len(data) // 2 + 1)

        def held_stream():
            yield requests[0]
            release.wait(60)
            yield from requests[1:]

        t = threading.Thread(target=lambda: d.stub().LoadStateDict(held_stream(), timeout=60))
        t.start()
        d.wait_for_log(f"session {sid}: LoadStateDict receiving")
        d.send_signal(signal.SIGTERM)
        d.wait_for_log("SIGTERM: draining")
        r = self.fails(5, "health", server=d.address, contains="is NOT_SERVING")
        self.assertEqual(r.stdout, "NOT_SERVING\n")
        self.fails(3, "info", sid, server=d.address, contains=("UNAVAILABLE", d.address))
        release.set()
        t.join(60)
        self.assertEqual(d.wait(), 0, d.stderr())
        d.assert_clean_exit()

    def test_server_errors(self):
        unknown = "0123456789abcdef0123456789abcdef"
        for argv in (["info", unknown], ["close", unknown],
                     ["checkpoint", unknown, "-o", self.path("x.safetensors")]):
            with self.subTest(argv=argv):
                self.fails(4, *argv, contains=("NOT_FOUND", unknown, "not found"))
        self.assertFalse(os.path.exists(self.path("x.safetensors")))
        # The server's own validation: INVALID_ARGUMENT with its message.
        bad = self.write("bad.json", {"linear": {"in_features": 64, "out_features": 0}})
        self.fails(4, "create", "--spec", bad,
                   contains=("CreateModel", "INVALID_ARGUMENT", "out_features"))
        self.fails(4, "create", "--spec", MLP_SPEC, "--optimizer", "sgd",
                   contains=("INVALID_ARGUMENT", "lr"))
        # A checkpoint of another architecture: strict load refused, session unchanged.
        cnn = self.create(CNN_SPEC)
        ckpt = self.path("cnn.safetensors")
        self.ok("checkpoint", cnn, "-o", ckpt)
        mlp = self.create()
        self.fails(4, "load", mlp, ckpt, contains=("LoadStateDict", "INVALID_ARGUMENT"))
        self.fails(4, "load", unknown, ckpt, contains="NOT_FOUND")

    def test_token_is_accepted(self):
        self.ok("--token", "secret", "sessions")
        self.ok("sessions", env={"TRAIND_TOKEN": "secret"})

    # ---- specs ----------------------------------------------------------------

    def test_spec_errors_name_the_path(self):
        lin = {"in_features": 64, "out_features": 10}
        cases = [
            ({"sequential": [{"linear": lin}, "relu", {"linear": {"in_features": "x"}}]},
             "spec.sequential[2].linear.in_features: expected an integer, got a string"),
            ({"sequential": [{"linear": {"in_features": 64.5}}]},
             "spec.sequential[0].linear.in_features: expected an integer, got 64.5"),
            ({"sequential": [{"linaer": {}}]},
             "spec.sequential[0].linaer: unknown field; expected name, sequential"),
            ({"sequential": ["relux"]}, "spec.sequential[0]: unknown name \"relux\""),
            ({"sequential": [{"relu": {}, "tanh": {}}]},
             "spec.sequential[0].tanh: \"relu\" and \"tanh\" both given"),
            ({"name": "x"}, "spec: no module kind given; expected one of sequential"),
            ([1], "spec: expected an object"),
            ({"linear": dict(lin, bias=1)}, "spec.linear.bias: expected true or false"),
            ({"conv2d": {"kernel_size": 1 << 40}}, "spec.conv2d.kernel_size: 1099511627776 is "
                                                   "out of range"),
            ({"residual": {"body": {"linear": lin}, "shortcut": {}}},
             "spec.residual.shortcut: no module kind given"),
            ({"model": "relu", "optimizer": {"sgd": {"lr": "fast"}}},
             "spec.optimizer.sgd.lr: expected a number, got a string"),
            ({"model": "relu", "optimizer": {"adam": {}, "sgd": {}}},
             "spec.optimizer.sgd: \"adam\" and \"sgd\" both given"),
            ({"model": "relu", "optimizer": {"grad_clip_norm": 1.0}},
             "spec.optimizer: no optimizer algorithm given"),
            ({"model": "relu", "optimizer": {"sgd": {"lr": 1},
                                             "schedule": {"cosine": {"t_max": 0.5}}}},
             "spec.optimizer.schedule.cosine.t_max: expected an integer"),
            ({"model": "relu", "seed": -1}, "spec.seed: -1 is out of range"),
            ({"model": "relu", "epochs": 3}, "spec.epochs: unknown field; expected model, "
                                              "optimizer, seed or name"),
        ]
        for i, (spec, message) in enumerate(cases):
            with self.subTest(spec=spec):
                path = self.write(f"s{i}.json", spec)
                self.fails(2, "create", "--spec", path, contains=f"{path}: {message}")
        path = self.write("trunc.json", '{"sequential": [\n  {"linear": {}},\n')
        self.fails(2, "create", "--spec", path, contains=f"{path}:3:")
        path = self.write("dup.json", '{"relu": {}, "relu": {}}')
        self.fails(2, "create", "--spec", path, contains="duplicate")
        self.fails(2, "create", "--spec", MLP_SPEC, "--optimizer", '{"sgd": {"lr": true}}',
                   contains="--optimizer: optimizer.sgd.lr: expected a number")
        self.fails(2, "create", "--spec", MLP_SPEC, "--optimizer", "nadam",
                   contains="optimizer: unknown name \"nadam\"")

    def test_spec_maps_onto_the_proto(self):
        spec = {"name": "ignored at the root", "sequential": [
            {"name": "stem", "conv2d": {"in_channels": 3, "out_channels": 4, "kernel_size": 3,
                                        "padding": 1, "bias": False}},
            {"batch_norm2d": {"num_features": 4, "momentum": 0.2}},
            {"name": "block", "residual": {
                "body": {"sequential": ["relu", {"conv2d": {"in_channels": 4, "out_channels": 4,
                                                            "kernel_size": 1}}]}}},
            {"adaptive_avg_pool2d": {"output_size": 1}},  # a scalar for a repeated field
            "flatten",
            {"layer_norm": {"normalized_shape": [4]}},
            {"dropout": {"p": 0.1}},
            {"name": "head", "linear": {"in_features": 4, "out_features": 3}},
        ]}
        sid = self.create(self.write("net.json", spec), "--seed", "7", "--name", "tiny")
        info = self.session(sid)
        self.assertEqual(info.name, "tiny")
        self.assertEqual([p.name for p in info.parameters],
                         ["stem.weight", "1.weight", "1.bias", "block.body.1.weight",
                          "block.body.1.bias", "5.weight", "5.bias", "head.weight",
                          "head.bias"])
        self.assertEqual(list(info.parameters[0].shape), [4, 3, 3, 3])
        self.assertEqual(info.optimizer, "")
        # The same spec and seed give the same weights (the seed reached the server).
        sid2 = self.create(self.write("net.json", spec), "--seed", "7")
        a, b = self.path("a.safetensors"), self.path("b.safetensors")
        self.ok("checkpoint", sid, "-o", a)
        self.ok("checkpoint", sid2, "-o", b)
        ta, tb = st.load(a)[0], st.load(b)[0]
        for k in ta:
            np.testing.assert_array_equal(ta[k], tb[k], k)

    def test_optimizer_options(self):
        cases = [
            (["--lr", "0.25"], "sgd", 0.25),  # --lr alone: SGD
            (["--optimizer", '{"adam": {"lr": 0.002, "beta2": 0.99}}'], "adam", 0.002),
            (["--optimizer", '{"adam": {"lr": 0.002}}', "--lr", "0.01"], "adam", 0.01),
            (["--optimizer", "adamw"], "adamw", 0.001),  # a bare name: torch's defaults
            (["--optimizer", self.write("opt.json", {"rmsprop": {"lr": 0.03, "centered": True},
                                                     "grad_clip_norm": 1.0})], "rmsprop", 0.03),
            ([], "sgd", 0.1),  # the spec's own optimizer
        ]
        for args, name, lr in cases:
            with self.subTest(args=args):
                info = self.session(self.create(MLP_SPEC, *args))
                self.assertEqual(info.optimizer, name)
                self.assertAlmostEqual(info.lr, lr, places=9)
        # A schedule in the spec reaches the server (cosine from step 0: the base LR).
        spec = self.write("sched.json", {"model": {"linear": {"in_features": 2,
                                                              "out_features": 2}},
                                         "optimizer": {"sgd": {"lr": 0.5}, "schedule": {
                                             "step": {"step_size": 1, "gamma": 0.5}}}})
        self.assertAlmostEqual(self.session(self.create(spec)).lr, 0.5)

    # ---- the session commands -------------------------------------------------

    def test_create_sessions_info_close(self):
        r = self.ok("create", "--spec", MLP_SPEC)
        sid = r.stdout.strip()
        self.assertRegex(sid, SESSION_ID)
        self.assertIn("9610 parameters", r.stderr)
        self.addCleanup(self.close_quietly, sid)
        self.assertIn(sid, self.open_ids())

        lines = self.ok("sessions").stdout.splitlines()
        self.assertTrue(lines[0].startswith("SESSION"), lines)
        row = [ln for ln in lines if ln.startswith(sid)]
        self.assertEqual(len(row), 1, lines)
        self.assertEqual(row[0].split()[1:], ["digits-mlp", "9610", "0", "train", "sgd"])

        out = self.ok("info", sid).stdout
        for s in (f"session:    {sid}", "name:       digits-mlp", "9610 in 4 tensors",
                  "mode:       train", "optimizer:  sgd, step 0, next lr 0.1"):
            self.assertIn(s, out)
        self.assertRegex(out, r"0\.weight\s+float32\s+\[128, 64\]")
        self.assertRegex(out, r"2\.bias\s+float32\s+\[10\]")

        self.assertEqual(self.ok("close", sid).stdout, f"closed {sid}\n")
        self.assertNotIn(sid, self.open_ids())
        self.fails(4, "info", sid, contains="NOT_FOUND")
        self.fails(4, "close", sid, contains="NOT_FOUND")

    # ---- training -------------------------------------------------------------

    def test_train_digits_mlp(self):
        before = self.open_ids()
        ckpt = self.path("mlp.safetensors")
        r = self.ok("train", "--spec", MLP_SPEC, "--data", DIGITS, "--scale", "0.0625",
                    "--epochs", "4", "-o", ckpt)
        self.assertNotIn("\r", r.stderr)  # no progress bar when stderr is not a terminal
        self.assertIn("1797 rows, 64 features, 10 classes; 1438 for training, 359 held out",
                      r.stdout)
        epochs = re.findall(r"^epoch (\d)/4: loss ([\d.]+), accuracy ([\d.]+)%, "
                            r"val accuracy ([\d.]+)%", r.stdout, re.M)
        self.assertEqual([e[0] for e in epochs], ["1", "2", "3", "4"], r.stdout)
        losses = [float(e[1]) for e in epochs]
        self.assertLess(losses[-1], losses[0])
        final = re.search(r"final accuracy: ([\d.]+)% \((\d+)/359 held-out rows\)", r.stdout)
        self.assertIsNotNone(final, r.stdout)
        self.assertGreaterEqual(float(final.group(1)), 90.0, r.stdout)
        self.assertEqual(self.open_ids(), before)  # closed after training (no --keep)

        # The checkpoint loads into torch (strict) and classifies the digits there too.
        net = load_into_torch(torch_mlp(), ckpt).eval()
        x, y = digits()
        with torch.no_grad():
            pred = net(torch.from_numpy(x)).argmax(1).numpy()
        self.assertGreaterEqual((pred == y).mean(), 0.9)

    def test_train_cnn_keep_checkpoint_and_load(self):
        ckpt = self.path("cnn.safetensors")
        r = self.ok("train", "--spec", CNN_SPEC, "--data", DIGITS, "--scale", "0.0625",
                    "--input-shape", "1,8,8", "--epochs", "5", "--val-split", "0.25",
                    "--batch-size", "32", "--seed", "3", "--keep", "--name", "cnn-kept")
        self.assertIn("1348 for training, 449 held out", r.stdout)
        final = re.search(r"final accuracy: ([\d.]+)%", r.stdout)
        self.assertGreaterEqual(float(final.group(1)), 90.0, r.stdout)
        sid = re.search(r"^session: ([0-9a-f]{32})$", r.stdout, re.M).group(1)
        self.addCleanup(self.close_quietly, sid)
        info = self.session(sid)
        self.assertEqual(info.name, "cnn-kept")
        self.assertEqual(info.step, 5 * 43)  # ceil(1348 / 32) steps per epoch
        self.assertTrue(info.training)  # back in train mode after each evaluation

        out = self.ok("checkpoint", sid, "-o", ckpt).stdout
        self.assertEqual(out, f"wrote {ckpt} ({os.path.getsize(ckpt)} bytes)\n")
        net = load_into_torch(torch_cnn(), ckpt).eval()
        x, y = digits()
        with torch.no_grad():
            pred = net(torch.from_numpy(x).reshape(-1, 1, 8, 8)).argmax(1).numpy()
        self.assertGreaterEqual((pred == y).mean(), 0.9)

        # load round-trips it: into a fresh session, whose checkpoint is then the same.
        fresh = self.create(CNN_SPEC, "--seed", "99")
        self.assertEqual(self.ok("load", fresh, ckpt).stdout, f"loaded {ckpt} into {fresh}\n")
        again = self.path("again.safetensors")
        self.ok("checkpoint", fresh, "-o", again)
        a, b = st.load(ckpt)[0], st.load(again)[0]
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], k)

        # With the optimizer state, and non-strict loads that list the keys.
        full = self.path("full.safetensors")
        self.ok("checkpoint", sid, "-o", full, "--include-optimizer")
        self.assertTrue(any(k.startswith("optimizer/") for k in st.load(full)[0]))
        net = torch_cnn()  # what torch users do with such a file: drop the resume keys
        net.load_state_dict({k: v for k, v in st.load_torch(full)[0].items()
                             if not k.startswith(("optimizer/", "rng/"))})
        self.ok("load", fresh, full)
        self.assertEqual(self.session(fresh).step, 5 * 43)  # the optimizer came along
        partial = self.path("partial.safetensors")
        tensors = st.load(ckpt)[0]
        tensors.pop("classifier.bias")
        tensors["extra"] = np.zeros(2, np.float32)
        st.save(tensors, partial)
        self.fails(4, "load", fresh, partial, contains="INVALID_ARGUMENT")
        out = self.ok("load", "--no-strict", fresh, partial).stdout
        self.assertIn("missing keys (1): classifier.bias", out)
        self.assertIn("unexpected keys (1): extra", out)

    def test_train_without_validation(self):
        r = self.ok("train", "--spec", MLP_SPEC, "--data", DIGITS, "--scale", "0.0625",
                    "--epochs", "1", "--val-split", "0", "--lr", "0.05")
        self.assertIn("1797 for training, 0 held out", r.stdout)
        self.assertNotIn("val accuracy", r.stdout)
        self.assertRegex(r.stdout, r"final accuracy: [\d.]+% \(\d+/1797 training rows\)")

    def test_train_server_error_closes_the_session(self):
        # The spec's input width does not match the data: the server names both shapes.
        spec = self.write("wide.json", {"model": {"linear": {"in_features": 32,
                                                             "out_features": 10}},
                                        "optimizer": {"sgd": {"lr": 0.1}}})
        before = self.open_ids()
        self.fails(4, "train", "--spec", spec, "--data", DIGITS,
                   contains=("TrainStep", "INVALID_ARGUMENT", "64"))
        self.assertEqual(self.open_ids(), before)

    def test_progress_bar_on_a_tty(self):
        master, slave = pty.openpty()
        try:
            e = dict(os.environ, TRAIND_SERVER=self.daemon.address)
            p = subprocess.run([TRAINCTL, "train", "--spec", MLP_SPEC, "--data", DIGITS,
                                "--scale", "0.0625", "--epochs", "1"], env=e,
                               stdout=subprocess.PIPE, stderr=slave, timeout=120)
            os.close(slave)
            slave = None
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed and drained
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        tty = b"".join(chunks).decode()
        self.assertEqual(p.returncode, 0, tty)
        self.assertIn("\r\x1b[Kepoch 1/1 [", tty)
        self.assertIn("] 1438/1438 loss ", tty)
        self.assertIn("epoch 1/1: loss", p.stdout.decode())


if __name__ == "__main__":
    daemon.main()
