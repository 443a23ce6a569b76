# bookcast: `make run` runs the demo on the embedded simulator, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0
# hftbacktest 2.4.4 pins numpy<2.3, which vectorbt 1.2 forbids: it gets its own venv, used
# only by the export round-trip test (tests/exporters), which loads exported files with it.
HFT_VENV := .venv-hftbacktest
HFT_STAMP := $(HFT_VENV)/.installed
HFTBACKTEST_VERSION := 2.4.4

.PHONY: run test test-slow test-chaos lint bench clean-venv chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: a bare requirement would pull several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(HFT_STAMP):
	test -x $(HFT_VENV)/bin/python || $(PYTHON) -m venv $(HFT_VENV)
	$(HFT_VENV)/bin/python -m pip install --quiet hftbacktest==$(HFTBACKTEST_VERSION)
	touch $(HFT_STAMP)

run: $(STAMP)
	$(BIN)/bookcast demo

# The dashboard's browser test drives Debian's Chromium: installed here when it can be;
# when it cannot, the test is left out and one line says how to install it.
CHROMIUM := /usr/bin/chromium
NO_CHROMIUM := "note: the dashboard's browser test did not run: Chromium is not installed and could not be installed here; install it with: apt-get install chromium chromium-driver"

test: $(STAMP) $(HFT_STAMP)
	@test -x $(CHROMIUM) || $(MAKE) --no-print-directory chromium || true
	@if test -x $(CHROMIUM); then \
	  $(BIN)/python -m pytest -m "not slow and not chaos" -n 2 --dist loadfile; \
	else \
	  echo $(NO_CHROMIUM); \
	  $(BIN)/python -m pytest -m "not slow and not chaos and not browser" -n 2 --dist loadfile; rc=$$?; \
	  echo $(NO_CHROMIUM); exit $$rc; \
	fi

chromium:
	@echo "installing Chromium for the dashboard's browser test (apt-get)"
	@(apt-get install -y -qq chromium chromium-driver || \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)) >/dev/null 2>&1

test-slow: $(STAMP) $(HFT_STAMP)
	$(BIN)/python -m pytest -m slow

test-chaos: $(STAMP)
	$(BIN)/python -m pytest -m chaos -n 2 tests/daemon/test_chaos.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV) $(HFT_VENV)
