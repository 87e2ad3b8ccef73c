# Two commands do everything on a fresh machine: `make report` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
export MMGA_DATA_DIR ?= $(if $(wildcard ../shared/data),../shared/data,)
# numba caches compiled kernels beside the packages they come from; make venv compiles them once
export NUMBA_CACHE_DIR ?= $(CURDIR)/$(VENV)/numba_cache
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv report test lint bench lock clean chromium

# The venv is rebuilt only when the pins or the package metadata change: a second call installs nothing.
$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/nbstripout --install 2>/dev/null || true
	$(BIN)/python -m mmga_helpers.tools.warmup
	touch $(STAMP)

venv: $(STAMP)

chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

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

lock: $(STAMP)
	{ echo "# Exact pins, installed by the Makefile (make venv). Regenerate: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^mmga'; } > requirements.lock.tmp && mv requirements.lock.tmp requirements.lock
	{ sed -n 1,9p environment.yml; grep -v '^#' requirements.lock | sed 's/^/      - /'; } > environment.yml.tmp && mv environment.yml.tmp environment.yml

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
