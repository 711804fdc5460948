#!/usr/bin/env bash
# Makes the local Debian bookworm base image that deploy/Dockerfile builds on
# here (no image registry is reachable): debootstrap once, keep the rootfs as
# a tarball under $TRAIND_CI_CACHE, import it into podman when missing.
#
#   CONTAINERS_CONF=deploy/test/containers.conf bash deploy/test/base-image.sh [IMAGE]
#
# Idempotent: an existing image costs one `podman image exists`; an existing
# tarball is imported without debootstrap (about 40 s saved, and the network).
set -euo pipefail

image=${1:-localhost/debian:bookworm}
cache=${TRAIND_CI_CACHE:-/var/cache/traind-ci}
tarball=$cache/debian-bookworm-minbase.tar
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What debian:bookworm-slim drops: docs, man pages, locales (and dpkg told to
# keep dropping them in later installs), apt lists and caches.
slim() {
  cat >"$1/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  find "$1/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$1"/usr/share/man/* "$1"/usr/share/groff/* "$1"/usr/share/info/* \
         "$1"/usr/share/locale/* "$1"/usr/share/lintian/* \
         "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb \
         "$1"/var/log/bootstrap.log
}

if podman image exists "$image"; then
  echo "base-image: $image present"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "base-image: debootstrap bookworm into $rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/debootstrap.log"; exit 1; }
  slim "$rootfs"
  tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

echo "base-image: importing $tarball as $image"
podman import -q --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
