# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything is installed into .venv; nothing is downloaded at run time.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: install install-test demo test ui bench clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first: pinned to the CPU wheel so that nothing pulls a multi-GB CUDA build.
# rapidocr-onnxruntime declares opencv-python; --no-deps keeps the headless OpenCV we pin.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps rapidocr-onnxruntime==1.4.4
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e '.[test,scale]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/spairs demo

test: install-test
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile

ui: install
	$(BIN)/spairs ui

bench: install
	$(BIN)/python bench/import_time.py
	$(BIN)/python bench/source_images_throughput.py

clean-data:
	rm -rf data/images data/tables data/cache data/demo_seeds data/reports data/dagster data/catalog.duckdb
