#!/bin/sh
# Training parity against PyTorch: every test model x every optimizer.
# usage: run_train.sh TRAIN_DUMP OUTDIR [STEPS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$2"
mkdir -p "$2"
"$1" "$2" "${3:-10}"
exec "${TRAIND_PYTHON:-/usr/bin/python3}" "$here/train_parity.py" "$2"
