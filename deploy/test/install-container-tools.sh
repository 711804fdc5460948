#!/usr/bin/env bash
# Installs what `make test-deploy` needs on the host: podman (with runc, since
# crun cannot set rlimits here), buildah, debootstrap for the local base image,
# systemd's analyzer for the unit check, and python3-yaml for the manifest test.
#
# Idempotent: packages already present are skipped.
set -euo pipefail

packages=(podman buildah runc debootstrap systemd python3-yaml)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-container-tools: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-container-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
