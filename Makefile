# Two commands: `make demo` (set up and run the platform, no services) and `make test`
# (`make test-unit`: the fast tier alone, under a minute).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ML_PLATFORM_DATA_DIR ?= $(CURDIR)/data
DEMO_UI ?= 1
DEMO_DAYS ?= 60
UI_PORT ?= 3000

# Hash-locked: the runtime set (every image), then what the torch and text extras and the tests add.
LOCKS := deploy/requirements.lock deploy/requirements-torch.lock deploy/requirements-text.lock deploy/requirements-test.lock

.PHONY: install lock lint browser demo ui screenshots test test-unit test-integration test-e2e test-deploy bench bench-postgres bench-year bench-latency bench-floor bench-scale bench-event-log bench-in-run bench-draft bench-load bench-serve dagster-home validate clean

# Exactly the locked files: uv refuses any whose SHA-256 is not in the locks (nothing resolves afresh),
# then the project itself, editable, built by the locked setuptools. pip and uv first (locked too, installed
# by pip: older pips refuse locked requirements with extras in --require-hashes mode); uv installs the rest
# several times faster than pip (~1 min against ~3 min here). uv reads no pip configuration: it is handed the
# find-links folders pip is configured with (this machine keeps torch's CPU wheel in one). --compile-bytecode,
# as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine, CI) nothing would write the .pyc files, and
# every process (each run worker, server, test) would compile Dagster, MLflow and pandas from source again.
install: $(VENV)/.installed

PIP_FIND_LINKS_CONFIGURED = $(sort $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$$/\1/p"))
UV_INSTALL = $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode $(addprefix --find-links ,$(PIP_FIND_LINKS_CONFIGURED))

$(VENV)/.installed: pyproject.toml deploy/requirements-pip.lock $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r deploy/requirements-pip.lock
	$(UV_INSTALL) --require-hashes $(addprefix -r ,$(LOCKS))
	$(UV_INSTALL) --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

# Re-resolve every lock to the newest versions pyproject.toml allows and hash their files
# (then review, test, commit). To add a dependency without moving the others, run
# `$(BIN)/python deploy/refresh_lock.py PINS.txt` with today's pins (name==version lines) as constraints.
lock: install
	$(BIN)/python deploy/refresh_lock.py

# Formatting (ruff format, 120 columns), lint rules (ruff check) and types (mypy, pyproject.toml's [tool.mypy]):
# each must pass; CI (.ci/run) runs it before the tests.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy ml_platform

# The browser tests drive Debian's chromium with playwright (no browser download).
browser:
	@command -v chromium > /dev/null || { apt-get update -q && apt-get install -y -q chromium > /dev/null; }

dagster-home: install
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@# create the SQLite schemas up front: webserver and daemon racing to create them can fail
	$(BIN)/dagster instance migrate > /dev/null

# The demo runs from the checkout (`python -m demo`): it is not in the platform's wheel.
demo: install dagster-home
	$(BIN)/python -m demo run --days $(DEMO_DAYS)
	@if [ "$(DEMO_UI)" != "0" ]; then $(MAKE) --no-print-directory ui; fi

# `dg dev` on :$(UI_PORT) (default 3000; schedules and sensors running) and the MLflow UI on the local store at
# MLFLOW_UI_URL (default http://127.0.0.1:5000, where the asset pages' MLflow links point); Ctrl-C stops both. The
# daily partitions start at the first landed day unless ML_PLATFORM_PARTITIONS_START says otherwise (demo/ui.py).
ui: install dagster-home
	$(BIN)/python -m demo ui --port $(UI_PORT)

# The README's pictures (docs/images/*.png): a 60-day demo in temporary directories, served by `make ui`'s
# launcher, photographed in Chromium (docs/screenshots.py).
screenshots: install browser
	$(BIN)/python docs/screenshots.py --out docs/images

# Loads every spec and the definitions as the UI's code server would (a spec mistake fails naming file and field):
# `dg check defs`, Dagster's successor of `dagster definitions validate` (which still works, with a warning).
validate: dagster-home
	$(BIN)/dg check defs

# Every tier (ml_platform_tests/{unit,integration,e2e,deploy}) in one pytest session on two xdist workers:
# most of a serial run waits on servers and run workers (load ~1.4 on 2 cores), so two test files run at a
# time. A file goes to one worker whole (its module-scoped servers start once), in collection order (not
# xdist's most-tests-first, which left the long one-test server files for the end): deploy/ and e2e/ first,
# unit/'s short tests last to even out the finish. The trained churn platform is built once for both workers
# (support/fixtures.py); the files using the fraud/prices/news platforms run on one worker (support/scheduling.py).
# Tests marked exclusive (they restart the Postgres server the others use) run alone afterwards.
# Python writes its bytecode caches here even where PYTHONDONTWRITEBYTECODE is set (this machine, CI): the tests
# start hundreds of processes (CLI commands, servers, run workers), and each would otherwise compile the platform's
# own modules (and pytest each worker's test modules) from source again: ~25% of a CLI test's time.
test: install browser
	export PYTHONDONTWRITEBYTECODE=; status=0; \
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=30 -m "not exclusive" || status=$$?; \
	$(BIN)/pytest -q -m exclusive || status=$$?; \
	exit $$status

# One tier. unit: pure and in-process, under a minute. integration: Dagster runs in process,
# Postgres, MLflow servers, loopback webhooks. e2e: real dagster-webserver/daemon, the browser,
# the demo (the tests marked slow). deploy: Helm, Kubernetes Jobs, images, instance config.
test-unit test-integration test-deploy: install
	$(BIN)/pytest -q ml_platform_tests/$(@:test-%=%)

test-e2e: install browser
	$(BIN)/pytest -q ml_platform_tests/e2e

bench: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/backfill.py --days 60 --events-per-day 100000 --json benchmarks/results/backfill.json

# The same backfill on Postgres instance storage (a fresh database on 127.0.0.1:5432, dropped afterwards).
bench-postgres: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/backfill.py --days 60 --events-per-day 100000 --instance postgres --json benchmarks/results/backfill_postgres.json

# A year of 1M-event days, the same backfill on SQLite and then on Postgres instance storage (hours on 2 cores).
bench-year: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/backfill.py --days 365 --events-per-day 1000000 --instance sqlite postgres --compute-before-each --timeout 10800 --json benchmarks/results/backfill_year.json

# Dagster's cost inside a range step counted directly: each stage as a run and bare, in one process (SQLite, Postgres).
bench-in-run: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/in_run.py --days 30 --events-per-day 1000000 --json benchmarks/results/in_run.json

# Each stage's pure compute against a DuckDB floor at 1M events/day (outputs checked equal, peak RSS per stage).
bench-floor: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/stage_floor.py --days 10 --events-per-day 1000000 --json benchmarks/results/stage_floor.json

# How the stages scale (issue 28): 2 concurrent one-core runs vs one, 2 cores vs 1 per stage, and the run
# worker's peak RSS for one churn day of 1M/4M/16M events. --days 30 fits ~10 minutes here (a year: --days 365).
bench-scale: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/scale.py --days 30 --events-per-day 1000000 --json benchmarks/results/scale.json

# Drafting a spec (`new-use-case --from-data`) from a year of 1M-row days, Parquet and CSV: time and peak RSS
# (lands ~30 GB of day files in a temp dir first; --data DIR keeps them for the next run).
bench-draft: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/draft_spec.py --days 365 --rows-per-day 1000000 --json benchmarks/results/draft_spec.json

# Decades of daily partitions: the code location's load time with a 10,000-partition use case against the shipped
# ones (fresh processes), and that use case's whole history (a few events a day), raw_events -> features, in one run.
bench-load: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/code_location.py --partitions 10000 --json benchmarks/results/code_location.json

# What storing one check evaluation costs: Dagster's SQLite/Postgres event logs vs the platform's (ml_platform/storage).
bench-event-log: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/event_log.py --partitions 60 --json benchmarks/results/event_log.json

# `ml-platform serve` under load (churn, fraud, news; 1 and 100 rows at concurrency 1/16/64; a promotion midway)
bench-serve: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/serve.py --json benchmarks/results/serve.json

# Landed file -> predictions recorded, over 5 days landed one at a time (shipped sensor settings).
bench-latency: install
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/sensor_latency.py --days 5 --events-per-day 100000 --json benchmarks/results/sensor_latency.json

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) data
