#!/bin/sh
# The RPC benchmark in one run: bare gRPC echo, TrainStep round trip (with its ratios to
# the echo and to PyTorch's local step, measured here too), bulk transfer MB/s and
# concurrent sessions. See bench_rpc.c.
# usage: run_bench_rpc.sh BUILD_DIR [HOST:PORT]
# Without HOST:PORT it starts BUILD_DIR/server/traind (or $TRAIND_DAEMON) on a free loopback port (with a
# parameter limit that admits the 100 MB model) and stops it with SIGTERM afterwards.
# Build with optimisation (RelWithDebInfo); a Debug or sanitizer build measures the wrong
# thing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run_bench_rpc.sh BUILD_DIR [HOST:PORT]}
addr=${2:-}
py=${TRAIND_PYTHON:-/usr/bin/python3}

torch_ms=$("$py" "$here/torch_mlp_small_step.py" 1)
echo "PyTorch local train step, mlp_small batch 32, 1 thread: median $torch_ms ms"

pid=
tmp=
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  [ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ -z "$addr" ]; then
  daemon=${TRAIND_DAEMON:-$build/server/traind}
  [ -x "$daemon" ] || { echo "run_bench_rpc: $daemon not built" >&2; exit 1; }
  tmp=$(mktemp -d)
  . "$here/start_traind.sh"
  start_traind run_bench_rpc "$daemon" "$tmp/traind.log" --data-dir "$tmp/data" \
    --max-parameters 30000000 --log-level info
fi

"$build/tests/bench_rpc" --server "$addr" --torch-ms "$torch_ms"
