# Two commands do everything on a fresh machine: `make report` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# GPU=1 (Linux, NVIDIA): TensorFlow's CUDA build and libraries in place of tensorflow-cpu; a venv made
# so stays so for later make calls (make clean to go back)
GPU ?= $(if $(wildcard $(VENV)/.installed-gpu),1,)
STAMP := $(VENV)/.installed$(if $(GPU),-gpu)
TF_VERSION = $(shell sed -n 's/^tensorflow[-_]cpu==\([^ ;]*\).*/\1/p' requirements.lock)
PROFILE ?= quick
export MMGA_DATA_DIR ?= $(if $(wildcard ../shared/data),../shared/data,)
# numba caches compiled kernels beside the packages they come from; make venv compiles them once
export NUMBA_CACHE_DIR ?= $(CURDIR)/$(VENV)/numba_cache
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv report test lint bench lock check-platforms clean chromium

# The venv is rebuilt only when the pins or the package metadata change: a second call installs nothing.
# GPU: tensorflow-cpu shares the tensorflow package's files, so both go and the CUDA build alone comes back.
$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
ifeq ($(GPU),)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
else
	grep -v '^tensorflow[-_]cpu==' requirements.lock > $(VENV)/requirements-gpu.txt
	if $(BIN)/pip show --quiet tensorflow-cpu 2>/dev/null; then $(BIN)/pip uninstall --quiet --yes tensorflow-cpu tensorflow; fi
	$(BIN)/pip install --quiet --disable-pip-version-check -r $(VENV)/requirements-gpu.txt "tensorflow[and-cuda]==$(TF_VERSION)"
endif
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/nbstripout --install 2>/dev/null || true
	$(BIN)/python -m mmga_helpers.tools.warmup
	touch $(STAMP)

venv: $(STAMP)

# headless Chromium for the browser tests; node and npm for the live page (its tests, and npm ci in mmga book)
chromium:
	@missing="$$(command -v chromium >/dev/null || echo chromium) $$(command -v chromedriver >/dev/null || echo chromium-driver) \
	  $$(command -v npm >/dev/null || echo nodejs npm)"; \
	if [ -n "$${missing// /}" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

report: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/mmga run --profile $(PROFILE) && $(BIN)/mmga book --profile $(PROFILE); rc=$$?; \
	echo "make report: run + book took $$(( $$(date +%s) - start )) s"; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) chromium lint
	if compgen -G "notebooks/*.ipynb" >/dev/null; then $(BIN)/nbstripout --verify notebooks/*.ipynb; fi
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/mmga bench --profile $(PROFILE)

# pip freeze of this venv into requirements.lock, keeping each pin's environment marker and the pins for
# other platforms (macOS tensorflow, Windows colorama, ...), then environment.yml from the lock.
lock: $(STAMP)
	$(BIN)/python -m mmga_helpers.tools.pins lock

# Do the lock's pins resolve to wheels on Linux x86-64, macOS arm64 and Windows x86-64? (asks PyPI, ~2 min)
check-platforms: $(STAMP)
	$(BIN)/python -m mmga_helpers.tools.pins check

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
