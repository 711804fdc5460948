#!/usr/bin/env bash
# apt-install.sh NAME PACKAGE...: installs the Debian packages not yet present.
#
# Shared by install-deps.sh (what the build and tests need) and
# test/install-container-tools.sh (what `make test-deploy` needs). Idempotent:
# packages already present are skipped, so a second run costs one dpkg query
# each. Runs as root (CI and the dev machines are root) or through sudo; on a
# fresh machine it refreshes the package lists first, since apt-get install on
# an empty list finds nothing. NAME prefixes its messages.
set -euo pipefail

name=$1
shift
missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "$name: all $# packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "$name: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
