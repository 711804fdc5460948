#!/bin/sh
# The demo as a test: train_digits must reach at least 96% test accuracy and
# PyTorch must load its checkpoint and agree on every prediction.
# usage: check_demo.sh TRAIN_DIGITS DIGITS.csv OUTDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$3"
mkdir -p "$3"
out=$("$1" "$2" 30 "$3")
echo "$out"
acc=$(echo "$out" | sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p')
[ -n "$acc" ] || { echo "no test accuracy in the output"; exit 1; }
awk -v a="$acc" 'BEGIN { if (a + 0 < 96) { print "accuracy " a "% is below 96%"; exit 1 } }'
exec "${TRAIND_PYTHON:-/usr/bin/python3}" "$here/verify_in_torch.py" "$3"
