#!/bin/sh
# The op benchmark: linear and conv2d forward+backward, traind vs PyTorch.
# usage: run_bench.sh BUILD_DIR [bench_ops.py options]
# Writes BUILD_DIR/bench_ops.json and prints the table. Build with optimisation
# (RelWithDebInfo or Release); a Debug build measures the wrong thing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_bench.sh BUILD_DIR}
shift
exec "${TRAIND_PYTHON:-/usr/bin/python3}" "$here/bench_ops.py" --bin "$build/tests/bench_ops" \
  --json "$build/bench_ops.json" "$@"
