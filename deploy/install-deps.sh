#!/usr/bin/env bash
# Installs the Debian packages that building and testing traind need.
#
# Idempotent: packages already present are skipped, so a second run costs one
# dpkg query. Runs as root (CI and the dev machines are root); on a fresh
# machine it refreshes the package lists first, since apt-get install on an
# empty list finds nothing.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  # engine: BLAS, JSON for safetensors headers
  libopenblas-dev libjansson-dev
  # daemon: gRPC C core, libuv, protobuf-c and the code generators
  libgrpc-dev libuv1-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler protobuf-compiler-grpc
  # tests: unit tests, leak checks, the PyTorch oracle
  libcmocka-dev valgrind python3-numpy python3-torch
  # integration tests: Python gRPC stubs under /usr/bin/python3
  python3-grpcio python3-protobuf
  # Python client (clients/python): progress bars in fit(), its pytest suite, pip install
  python3-tqdm python3-pytest python3-pip python3-setuptools python3-wheel
  # deployment checks (deploy.manifests): YAML, systemd-analyze
  python3-yaml systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
