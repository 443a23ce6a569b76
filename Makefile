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

.PHONY: run test test-slow lint bench clean-venv

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

test: $(STAMP) $(HFT_STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile

test-slow: $(STAMP) $(HFT_STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV) $(HFT_VENV)
