"""daemon: start the real traind on a free loopback port and talk to it.

    with Daemon("--max-parameters", "1000") as d:
        stub = d.stub()                      # traind.v1.Trainer
        ...
    # leaving the block sends SIGTERM and asserts exit code 0

The binary is $TRAIND_BIN (default build/server/traind), the generated stubs
are under $TRAIND_PY_STUBS (default build/python). Every daemon's stderr is
kept: tests assert on it, and main() prints it when a test fails (so an
ASan report from the daemon is never lost).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STUBS = os.environ.get("TRAIND_PY_STUBS", os.path.join(ROOT, "build", "python"))
sys.path.insert(0, STUBS)
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))  # safetensors_np

import grpc  # noqa: E402

try:  # generated from inside proto/grpc, so that grpcio's `grpc` does not shadow it
    from health.v1 import health_pb2, health_pb2_grpc  # noqa: E402,F401
except ImportError:  # generated as grpc/health/v1: join grpcio's package path
    grpc.__path__.append(os.path.join(STUBS, "grpc"))
    from grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: E402,F401
from traind.v1 import trainer_pb2, trainer_pb2_grpc  # noqa: E402,F401

BIN = os.environ.get("TRAIND_BIN", os.path.join(ROOT, "build", "server", "traind"))
MIB = 1 << 20
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 128 * MIB),
                   ("grpc.max_receive_message_length", 128 * MIB)]
# Generous: an ASan build starts and stops slowly on a loaded machine. These
# bound a hang; they are not what a test asserts.
START_TIMEOUT = 60
STOP_TIMEOUT = 60
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")

_all_daemons = []


class Daemon:
    """One traind process on 127.0.0.1:<free port> with a temporary data dir
    (or `data_dir`, which outlives it: restarts share one)."""

    def __init__(self, *flags, env=None, data_dir=None, cwd=None):
        self.flags = list(flags)
        self.cwd = cwd  # the daemon's working directory (default: the test's)
        self.tmp = tempfile.TemporaryDirectory(prefix="traind-itest-")
        self.data_dir = data_dir or os.path.join(self.tmp.name, "data")
        self.env = dict(os.environ, **(env or {}))
        self.lines = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.address = None
        self.proc = None
        self.returncode = None
        self._channels = []
        _all_daemons.append(self)

    # ---- lifecycle -------------------------------------------------------

    def start(self):
        argv = [os.path.abspath(BIN), "--listen", "127.0.0.1:0", "--data-dir", self.data_dir]
        argv += self.flags
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env, cwd=self.cwd)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"traind exited with {self.proc.returncode} before "
                                     f"listening; argv {argv}\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"traind not listening after {START_TIMEOUT}s\n"
                                     f"{self.stderr()}")
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if self.address is None:
                m = re.search(r"listening on (\S+):(\d+)", line)
                if m:
                    self.address = f"{m.group(1)}:{m.group(2)}"
                    self._ready.set()

    def wait_for_log(self, text, timeout=START_TIMEOUT):
        """Blocks until a stderr line contains `text` (the daemon's own word
        that something happened, not a guess by sleeping)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(text in line for line in self.lines):
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"traind never logged {text!r}\n{self.stderr()}")

    def send_signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for exit; returns the exit code (None if it did not exit)."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(10)
        return self.returncode

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM, then asserts a clean exit (code 0, no sanitizer report)."""
        for ch in self._channels:
            ch.close()
        self._channels = []
        if self.proc.poll() is None:
            self.send_signal(sig)
        code = self.wait()
        if code is None:
            self.kill()
            raise AssertionError(f"traind did not exit within {STOP_TIMEOUT}s of "
                                 f"{signal.Signals(sig).name}\n{self.stderr()}")
        self.assert_clean_exit()
        self.tmp.cleanup()

    def assert_clean_exit(self):
        if self.returncode != 0:
            raise AssertionError(f"traind exited with {self.returncode}\n{self.stderr()}")
        report = self.sanitizer_report()
        if report:
            raise AssertionError(f"sanitizer report from traind\n{self.stderr()}")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()

    # ---- output ------------------------------------------------------------

    def stderr(self):
        with self._lock:
            return "\n".join(self.lines)

    def sanitizer_report(self):
        text = self.stderr()
        return [m for m in SANITIZER_MARKS if m in text]

    # ---- clients -----------------------------------------------------------

    def channel(self):
        """A new channel (its own connection) with 128 MiB message limits."""
        ch = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._channels.append(ch)
        return ch

    def stub(self, channel=None):
        return trainer_pb2_grpc.TrainerStub(channel or self.channel())

    def health(self, channel=None):
        return health_pb2_grpc.HealthStub(channel or self.channel())


class DaemonTestCase(unittest.TestCase):
    """One daemon per test class (FLAGS), a stub in self.stub."""

    FLAGS = ("--blas-threads", "1", "--workers", "2")

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(*cls.FLAGS).start()
        cls.channel = cls.daemon.channel()
        cls.stub = cls.daemon.stub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def setUp(self):
        self.addCleanup(self.assert_daemon_alive)

    def assert_daemon_alive(self):
        code = self.daemon.proc.poll()
        if code is not None:
            self.fail(f"traind died (exit status {code}) during this test\n{self.daemon.stderr()}")

    def assertRpcError(self, code, fn, *args, contains=(), **kwargs):
        """Calls fn; asserts it fails with `code` and a message holding every
        string of `contains` (case-insensitive). Returns the message."""
        with self.assertRaises(grpc.RpcError, msg=f"expected {code.name}") as cm:
            fn(*args, **kwargs)
        err = cm.exception
        self.assertEqual(err.code(), code, f"status {err.code().name}: {err.details()!r}")
        details = err.details() or ""
        for s in ([contains] if isinstance(contains, str) else contains):
            self.assertIn(s.lower(), details.lower(), f"message {details!r} lacks {s!r}")
        return details


def main():
    """unittest.main, then every daemon's stderr if anything failed."""
    prog = unittest.main(exit=False, verbosity=2)
    ok = prog.result.wasSuccessful()
    dirty = [d for d in _all_daemons if d.sanitizer_report()]
    if not ok or dirty:
        for i, d in enumerate(_all_daemons):
            sys.stderr.write(f"\n---- traind #{i} {d.flags} stderr ----\n{d.stderr()}\n")
    sys.exit(0 if ok and not dirty else 1)
