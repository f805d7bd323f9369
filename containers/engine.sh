#!/bin/sh
# Print the container engine command the image build uses: $ENGINE when set; else `docker` when DOCKER_HOST
# names an engine that answers; else `podman` when installed (it reads CONTAINERS_CONF); else `docker`.
# Exits 1, saying so on stderr, when there is neither.
set -eu
if [ -n "${ENGINE:-}" ]; then echo "$ENGINE"; exit 0; fi
if [ -n "${DOCKER_HOST:-}" ] && command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1; then
  echo docker; exit 0
fi
if command -v podman >/dev/null 2>&1; then echo podman; exit 0; fi
if command -v docker >/dev/null 2>&1 && docker version >/dev/null 2>&1; then echo docker; exit 0; fi
echo "no container engine: install Podman (apt-get install podman) or Docker, or set ENGINE" >&2
exit 1
