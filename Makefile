# Two set-up commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test bench bench-http bench-forecast soak serve lint clean dashboard-vendor

# Where `make serve` listens (the service reads HOST and PORT too; see app/settings.py).
HOST ?= 127.0.0.1
PORT ?= 8000

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The suite on TEST_WORKERS processes (pytest-xdist; CI has two cores), then the cases on the
# shared test PostgreSQL database one at a time (they skip without LOSSCAST_TEST_POSTGRES_URL).
# `--dist load`: the scope-grouping modes merge the contract tests' items, which share a name.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist load -m "not slow and not postgresql"
	$(PY) -m pytest -q -m "not slow and postgresql"

# Benchmarks of the numerical core and the slow tests (`make soak`, `make bench-http` and
# `make bench-forecast` run a real server, separately: ~20 min, a few minutes, ~1 h).
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

# The live-forecast protocol through the API (both sizes, alone and with history; ~1 h on 2 cores).
bench-forecast: $(STAMP)
	$(PY) -m bench.live_forecast

# Soak test of one real uvicorn process on loopback: 24 lengths of 100 to 200,000 steps fitted
# in 3 identical passes; fails if its memory mappings or RSS grow from pass to pass (~1 h on 2
# cores).
soak: $(STAMP)
	$(PY) -m bench.soak

# The dashboard's charting library (uPlot, pinned in app/dashboard/package-lock.json) from the npm
# registry into app/dashboard/static/vendor/uplot/ with its licence. Its output is committed, so
# `make serve` and `make test` need neither npm nor the internet; run this to upgrade it.
DASHBOARD := app/dashboard
UPLOT := $(DASHBOARD)/node_modules/uplot
dashboard-vendor:
	cd $(DASHBOARD) && npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p $(DASHBOARD)/static/vendor/uplot
	cp $(UPLOT)/dist/uPlot.iife.min.js $(UPLOT)/dist/uPlot.min.css $(UPLOT)/LICENSE $(UPLOT)/package.json \
		$(DASHBOARD)/static/vendor/uplot/

lint: $(STAMP)
	$(PY) -m ruff check fitting app tests bench losscast losscast_cli
	$(PY) -m ruff format --check fitting app tests bench losscast losscast_cli

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
