"""The handwritten digits data set (tests/data/digits.csv) for the examples.

1797 8x8 images as scikit-learn ships them: 64 pixel values 0-16 and a label
0-9 per row. load() scales pixels to [0, 1] (float32) and returns int64
labels; split() holds out a shuffled fraction as the test set.
"""
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))
DEFAULT_CSV = os.path.join(ROOT, "tests", "data", "digits.csv")


def load(path=DEFAULT_CSV):
    """(x float32 [N, 64] in [0, 1], y int64 [N])."""
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    return (data[:, :64] / 16.0).astype(np.float32), data[:, 64].copy()


def split(x, y, test_fraction=0.2, seed=0):
    """(x_train, y_train, x_test, y_test): a shuffled test_fraction held out."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def import_traind():
    """The traind package: from $TRAIND_PY_STUBS (a build tree's python dir) when
    set, else the installed one, else this source tree's build/python."""
    import sys
    if os.environ.get("TRAIND_PY_STUBS"):
        sys.path.insert(0, os.environ["TRAIND_PY_STUBS"])
    try:
        import traind
    except ImportError:
        sys.path.insert(0, os.path.join(ROOT, "build", "python"))
        import traind
    return traind
