"""Builds the traind package, generating its gRPC stubs from proto/ with protoc.

    /usr/bin/python3 -m pip install --no-build-isolation --no-index clients/python

needs protoc and grpc_python_plugin (Debian: protobuf-compiler,
protobuf-compiler-grpc). The .proto files are read from $TRAIND_PROTO_DIR, or
../../proto (this package inside the traind source tree).
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def _tool(name, env):
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        raise SystemExit(f"traind setup: {name} not found (Debian: protobuf-compiler, "
                         f"protobuf-compiler-grpc), or set ${env}")
    return path


class BuildWithStubs(build_py):
    """build_py, then protoc writes traind/v1/trainer_pb2*.py and
    traind/health/v1/health_pb2.py into the build directory."""

    def run(self):
        super().run()
        proto = os.environ.get("TRAIND_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
        trainer = os.path.join(proto, "traind", "v1", "trainer.proto")
        if not os.path.exists(trainer):
            raise SystemExit(f"traind setup: {trainer} not found; set TRAIND_PROTO_DIR")
        protoc = _tool("protoc", "PROTOC")
        plugin = _tool("grpc_python_plugin", "GRPC_PYTHON_PLUGIN")
        out = os.path.abspath(self.build_lib)
        pkg = os.path.join(out, "traind")
        for sub in ("v1", "health", os.path.join("health", "v1")):
            os.makedirs(os.path.join(pkg, sub), exist_ok=True)
            open(os.path.join(pkg, sub, "__init__.py"), "a").close()
        subprocess.check_call([protoc, "-I", proto, f"--python_out={out}",
                               f"--grpc_python_out={out}",
                               f"--plugin=protoc-gen-grpc_python={plugin}",
                               "traind/v1/trainer.proto"])
        subprocess.check_call([protoc, "-I", os.path.join(proto, "grpc"), f"--python_out={pkg}",
                               "health/v1/health.proto"])


setup(cmdclass={"build_py": BuildWithStubs})
