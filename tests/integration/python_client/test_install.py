"""The package installs with pip, offline, from a copy of the source tree, and
the installed copy talks to the daemon."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT


def test_pip_install_offline(daemon, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    env = dict(os.environ, TRAIND_PROTO_DIR=os.path.join(ROOT, "proto"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)],
                   check=True, env=env, cwd=tmp_path)
    code = ("import traind, sys\n"
            "assert traind.__file__.startswith(sys.argv[2]), traind.__file__\n"
            "c = traind.connect(sys.argv[1])\n"
            "assert c.health() == 'SERVING'\n"
            "m = c.create_model(traind.nn.Sequential(traind.nn.Linear(2, 2)))\n"
            "print(m.forward([[1.0, 2.0]]).shape)\n"
            "m.close()\n")
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", code, daemon.address, str(target)], env=env,
                         cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert out.strip() == "(1, 2)"
