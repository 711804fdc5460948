"""The README's "C client and trainctl" section runs as written, so the docs
cannot rot: its ```sh block runs under bash with trainctl on PATH, and its
```c block is compiled against libtraind-client and run, both against a real
daemon (the only change: 127.0.0.1:50051 becomes the test daemon's address).
They run in a temporary directory that links the repository's clients/ and
tests/data, so the files they write go nowhere."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

import daemon

SECTION = "## C client and trainctl"
ADDRESS = "127.0.0.1:50051"
TRAINCTL = os.environ.get("TRAINCTL_BIN", os.path.join(daemon.ROOT, "build", "clients", "c",
                                                        "trainctl"))
# How to build a program against the client library: set by CMake.
CLIENT_CFLAGS = os.environ.get("TRAIND_CLIENT_CFLAGS", "").split()
CLIENT_LIBS = os.environ.get("TRAIND_CLIENT_LIBS", "").split()


def blocks(lang):
    with open(os.path.join(daemon.ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end]
    return re.findall(rf"^```{lang}\n(.*?)^```$", section, flags=re.S | re.M)


class ReadmeClientsTest(daemon.DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="traind-readme-")
        self.addCleanup(self.tmp.cleanup)
        os.symlink(os.path.join(daemon.ROOT, "clients"), os.path.join(self.tmp.name, "clients"))
        os.makedirs(os.path.join(self.tmp.name, "tests"))
        os.symlink(os.path.join(daemon.ROOT, "tests", "data"),
                   os.path.join(self.tmp.name, "tests", "data"))

    def run_in_tmp(self, cmd, **kwargs):
        return subprocess.run(cmd, cwd=self.tmp.name, capture_output=True, text=True,
                              timeout=300, **kwargs)

    def test_sh_block(self):
        (block,) = blocks("sh")
        env = dict(os.environ, PATH=os.path.dirname(TRAINCTL) + os.pathsep + os.environ["PATH"])
        r = self.run_in_tmp(["bash", "-euo", "pipefail", "-c",
                             block.replace(ADDRESS, self.daemon.address)], env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SERVING", r.stdout)
        self.assertRegex(r.stdout, r"final accuracy: (9[6-9]|100)\.")
        self.assertTrue(os.path.exists(os.path.join(self.tmp.name, "mlp.safetensors")))

    def test_c_block(self):
        (block,) = blocks("c")
        src = os.path.join(self.tmp.name, "readme.c")
        with open(src, "w", encoding="utf-8") as f:
            f.write(block.replace(ADDRESS, self.daemon.address))
        exe = os.path.join(self.tmp.name, "readme")
        r = self.run_in_tmp(["cc", "-std=c11", "-Wall", "-Werror", *CLIENT_CFLAGS, src, "-o", exe,
                             *CLIENT_LIBS])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_in_tmp([exe])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", r.stdout)]
        self.assertEqual(len(losses), 5, r.stdout)
        self.assertLess(losses[-1], losses[0])
        self.assertIn("NOT_FOUND: session", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.tmp.name, "linear.safetensors")))


if __name__ == "__main__":
    sys.exit(daemon.main())
