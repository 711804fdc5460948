#!/bin/sh
# The load run: starts BUILD_DIR/server/traind (or $TRAIND_DAEMON) on a free loopback port
# with a temporary data dir, drives it with load_gen for SECONDS (default 120) with 64
# clients over 16 sessions, then stops it with SIGTERM and checks that it exits 0.
# usage: run_load.sh BUILD_DIR [SECONDS [load_gen options...]]
# Build with optimisation (RelWithDebInfo) for figures; a sanitizer build checks
# correctness only. See load_gen.c for what is checked.
set -eu
build=${1:?usage: run_load.sh BUILD_DIR [SECONDS [load_gen options...]]}
seconds=${2:-120}
[ $# -ge 2 ] && shift 2 || shift $#
gen=${TRAIND_LOAD_GEN:-$build/tests/load_gen}
daemon=${TRAIND_DAEMON:-$build/server/traind}
[ -x "$daemon" ] || { echo "run_load: $daemon not built" >&2; exit 1; }
[ -x "$gen" ] || { echo "run_load: $gen not built" >&2; exit 1; }

pid=
tmp=$(mktemp -d)
cleanup() {
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# 16 live sessions and, at the end, their 16 replays.
. "$(dirname "$0")/start_traind.sh"
start_traind run_load "$daemon" "$tmp/traind.log" --data-dir "$tmp/data" --max-sessions 256 \
  --log-level info

rc=0
"$gen" --target "$addr" --server-pid "$pid" --seconds "$seconds" "$@" || rc=$?

kill -TERM "$pid"
drc=0
wait "$pid" || drc=$?
pid=
if [ "$drc" -ne 0 ]; then
  echo "run_load: traind exited with $drc after SIGTERM" >&2
  tail -n 30 "$tmp/traind.log" >&2
  rc=1
fi
# Errors the daemon logged (a handler finishing twice, an internal error) fail the run.
if grep -E ' (error|warn) ' "$tmp/traind.log" >"$tmp/bad.log"; then
  echo "run_load: the daemon logged warnings or errors:" >&2
  head -n 30 "$tmp/bad.log" >&2
  rc=1
fi
echo "run_load: traind exit $drc, load_gen exit $rc"
exit "$rc"
