#!/usr/bin/env bash
# Installs the Debian packages that building and testing traind need
# (idempotent; apt-install.sh says how).
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
  # make fuzz: clang's libFuzzer
  clang libclang-rt-14-dev
)

exec bash "$(dirname "$0")/apt-install.sh" install-deps "${packages[@]}"
