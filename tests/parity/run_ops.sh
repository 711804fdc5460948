#!/bin/sh
# Op parity against PyTorch: dump every op case, then compare in torch.
# usage: run_ops.sh PARITY_DUMP OUTDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$2"
mkdir -p "$2"
"$1" "$2"
exec "${TRAIND_PYTHON:-/usr/bin/python3}" "$here/parity.py" "$2" \
  --ops-def "$here/../../lib/functional/ops.def"
