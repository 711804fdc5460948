"""Fixtures for the Python client's tests: real traind daemons over loopback.

The daemon harness is tests/integration/daemon.py ($TRAIND_BIN; stubs and the
traind package from $TRAIND_PY_STUBS, default build/python). Each daemon is
stopped with SIGTERM at the end and must exit 0 without a sanitizer report.
"""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))  # daemon.py
sys.path.insert(0, os.path.join(ROOT, "clients", "python", "examples"))  # digits.py

from daemon import Daemon  # noqa: E402  (puts $TRAIND_PY_STUBS first on sys.path)

import traind  # noqa: E402
from traind import nn, optim  # noqa: E402

FLAGS = ("--blas-threads", "1", "--workers", "2")


def _daemon(*flags):
    d = Daemon(*FLAGS, *flags).start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def daemon():
    yield from _daemon()


@pytest.fixture(scope="session")
def limited_daemon():
    """A daemon with small limits, for RESOURCE_EXHAUSTED."""
    yield from _daemon("--max-parameters", "1000", "--max-sessions", "4")


@pytest.fixture
def client(daemon):
    with traind.connect(daemon.address) as c:
        yield c
    assert daemon.proc.poll() is None, f"traind died during the test\n{daemon.stderr()}"


def mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture
def model(client):
    with client.create_model(mlp(), optimizer=optim.SGD(lr=0.1, momentum=0.9), seed=0,
                             name="test-mlp") as m:
        yield m


@pytest.fixture(scope="session")
def digits_data():
    import digits
    return digits.split(*digits.load())


def batch(n=32, features=64, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, features)).astype(np.float32),
            rng.integers(0, classes, n).astype(np.int64))
