#!/bin/sh
# The benchmarks, each side by side with PyTorch in the same run:
#   bench_ops    linear and conv2d forward+backward at the workloads' shapes
#   bench_train  one full training step of each workload (and eval forward)
# usage: run_bench.sh BUILD_DIR [ops|train]
# Writes BUILD_DIR/bench_ops.json and BUILD_DIR/bench_train.json and prints
# the tables. Build with optimisation (RelWithDebInfo or Release); a Debug
# build measures the wrong thing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_bench.sh BUILD_DIR [ops|train]}
which=${2:-all}
py=${TRAIND_PYTHON:-/usr/bin/python3}
if [ "$which" = all ] || [ "$which" = ops ]; then
  "$py" "$here/bench_ops.py" --bin "$build/tests/bench_ops" --json "$build/bench_ops.json"
fi
if [ "$which" = all ] || [ "$which" = train ]; then
  "$py" "$here/bench_train.py" --bin "$build/tests/bench_train" --json "$build/bench_train.json"
fi
