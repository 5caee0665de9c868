# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test bench bench-http serve lint clean

# Where `make serve` listens (the service reads HOST and PORT too; see app/settings.py).
HOST ?= 127.0.0.1
PORT ?= 8000

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.core
	$(PY) -m pytest -q -m slow

# The service on the embedded default database (SQLite under ./var/) at http://$(HOST):$(PORT).
serve: $(STAMP)
	mkdir -p var
	HOST=$(HOST) PORT=$(PORT) $(PY) -m uvicorn app.main:app --host $(HOST) --port $(PORT)

# Load benchmark of a real uvicorn process on loopback (wrk when installed, else httpx).
bench-http: $(STAMP)
	$(PY) -m bench.load

lint: $(STAMP)
	$(PY) -m ruff check fitting app tests bench losscast_cli
	$(PY) -m ruff format --check fitting app tests bench losscast_cli

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
