#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS: runs every fuzz target for SECONDS each, starting
# from its committed seeds (copied, so what the fuzzer adds stays in the build
# tree), and fails if any input crashes one (the input is kept under
# BUILD_DIR/fuzz-artifacts/ to become a regression seed).
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
status=0
for target in fuzz_requests fuzz_safetensors fuzz_spec_json fuzz_session_file; do
  corpus="$build/fuzz-corpus/$target"
  mkdir -p "$corpus"
  cp -n "$here/corpus/$target/"* "$corpus/" 2>/dev/null || true
  log="$build/$target.log"
  rc=0
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "$target: FAILED (exit $rc) after ${runs:-?} runs; the input is in $artifacts"
    grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5
    status=1
  else
    echo "$target: ${runs:-?} runs in ${seconds} s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, no crash"
  fi
done
exit $status
