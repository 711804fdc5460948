"""The README's Python client section runs as written (so the docs cannot rot).

Every ```python block between "## Python client" and the next "## " heading
runs, in order, in one namespace, against a real daemon: the only change is
the address (127.0.0.1:50051 becomes the test daemon's). They run in a
temporary directory holding tests/data, so files they write go nowhere.
"""
import os
import re

from conftest import ROOT

SECTION = "## Python client"
ADDRESS = "127.0.0.1:50051"


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)


def test_readme_has_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 3
    assert all(ADDRESS in b for b in blocks[:1]), "the first block connects to the default"


def test_readme_python_blocks_run(daemon, tmp_path, monkeypatch, capsys):
    os.makedirs(tmp_path / "tests")
    os.symlink(os.path.join(ROOT, "tests", "data"), tmp_path / "tests" / "data")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for i, block in enumerate(python_blocks()):
        code = compile(block.replace(ADDRESS, daemon.address), f"README.md python block {i + 1}",
                       "exec")
        exec(code, namespace)
    out = capsys.readouterr().out
    assert "NOT_FOUND" in out and "StepResult(" in out
    assert (tmp_path / "mlp.safetensors").exists()
