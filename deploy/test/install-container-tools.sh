#!/usr/bin/env bash
# Installs what `make test-deploy` needs on the host: podman (with runc, since
# crun cannot set rlimits here), buildah, debootstrap for the local base image,
# systemd's analyzer for the unit check, and python3-yaml for the manifest test.
#
# Idempotent: packages already present are skipped.
set -euo pipefail

packages=(podman buildah runc debootstrap systemd python3-yaml)

exec bash "$(dirname "$0")/../apt-install.sh" install-container-tools "${packages[@]}"
