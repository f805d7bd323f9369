#!/bin/sh
# Make the base image that unimodel's worker image is built FROM on a machine that reaches no image registry:
# a Debian root filesystem made with debootstrap (Debian's package mirror is all it needs), with Python 3,
# imported into the engine as an image. Does nothing when the image exists already.
#
#   containers/base.sh                       # → localhost/unimodel-base:bookworm
#   BASE_IMAGE=… SUITE=… MIRROR=… containers/base.sh
#
# Needs root (debootstrap, and the engine's import); installs nothing itself (`make test-services` installs
# debootstrap). Where a registry is reachable, build FROM python:3.11-slim instead (docs/containers.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ENGINE=${ENGINE:-$("$here/engine.sh")}
BASE_IMAGE=${BASE_IMAGE:-localhost/unimodel-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# python3-venv brings pip (ensurepip); libgomp1 is llama.cpp's OpenMP runtime.
PACKAGES=${PACKAGES:-python3,python3-venv,ca-certificates,libgomp1}

if $ENGINE image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE is there already"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "error: debootstrap is not installed (apt-get install debootstrap, or: make test-services)" >&2
  exit 1
fi
root=$(mktemp -d "${TMPDIR:-/var/tmp}/unimodel-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM
echo "debootstrap $SUITE ($MIRROR) into $root"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2; rm -f "$root.log"; echo "error: debootstrap failed" >&2; exit 1; }
rm -f "$root.log"
# What an image does not need: package lists and archives, documentation, manuals, locales but C.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
       "$root"/usr/share/info/* "$root"/var/log/*.log
tar --numeric-owner -C "$root" -c . | $ENGINE import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
echo "base image $BASE_IMAGE: $($ENGINE image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
