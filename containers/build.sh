#!/bin/sh
# Build unimodel's worker image (containers/Containerfile) with Podman or Docker, whichever is there
# (containers/engine.sh; ENGINE overrides; DOCKER_HOST and CONTAINERS_CONF are the engines' own).
#
#   containers/build.sh                                      # → unimodel-worker:latest (`make image`)
#   TAG=… BASE=docker.io/library/python:3.11-slim containers/build.sh
#
# BASE unset: the Debian base containers/base.sh makes with debootstrap (no registry needed). The Python wheels
# the image installs are built here on the host first (pip's cache holds llama-cpp-python once `make install` has
# compiled it), so the image needs neither a compiler nor an index, when the host's Python is the image's (3.11).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
ENGINE=${ENGINE:-$("$here/engine.sh")}
export ENGINE
TAG=${TAG:-unimodel-worker:latest}
PYTHON=${PYTHON:-$( [ -x "$repo/.venv/bin/python" ] && echo "$repo/.venv/bin/python" || command -v python3 )}
# Podman's default limits exceed some hosts' (containers/containers.conf says which); its settings then apply.
if [ "${ENGINE##*/}" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] && command -v runc >/dev/null 2>&1; then
  export CONTAINERS_CONF="$here/containers.conf"
fi

if [ -z "${BASE:-}" ]; then
  BASE=localhost/unimodel-base:bookworm
  BASE_IMAGE=$BASE "$here/base.sh"
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/unimodel-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT INT TERM
mkdir -p "$ctx/containers/wheels" "$ctx/src"
cp "$here/Containerfile" "$ctx/containers/"
tar -C "$repo/src" --exclude=__pycache__ --exclude='*.pyc' -cf - unimodel | tar -C "$ctx/src" -xf -
pip_options=""
if [ -n "$PYTHON" ] && "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "building wheels with $PYTHON"
  if "$PYTHON" -m pip wheel -q --wheel-dir "$ctx/containers/wheels" 'llama-cpp-python>=0.3.8' 'httpx>=0.28'; then
    pip_options=--no-index
  else
    echo "warning: no wheels from the host; the image build fetches and compiles them" >&2
    rm -f "$ctx"/containers/wheels/*.whl
  fi
fi
echo "building $TAG from $BASE with $ENGINE"
$ENGINE build -f "$ctx/containers/Containerfile" -t "$TAG" --build-arg BASE="$BASE" \
  --build-arg PIP_OPTIONS="$pip_options" "$ctx"
echo "built $TAG"
