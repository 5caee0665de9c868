# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test bench serve lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/core.py

lint: $(STAMP)
	$(PY) -m ruff check fitting app tests bench
	$(PY) -m ruff format --check fitting app tests bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
