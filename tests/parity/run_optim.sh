#!/bin/sh
# Optimizer parity against torch.optim: dump every optimizer case, then replay it in torch.
# usage: run_optim.sh OPTIM_DUMP OUTDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$2"
mkdir -p "$2"
"$1" "$2"
exec "${TRAIND_PYTHON:-/usr/bin/python3}" "$here/optim_parity.py" "$2"
