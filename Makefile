# Everything a fresh machine needs, from this file and requirements*.txt alone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
USERS_PORT ?= 8200
ORDERS_PORT ?= 8201
PROXY_PORT ?= 8202
# Users replicas, each with its own fault proxy (ports + 10 each): make run USERS_REPLICAS=3
USERS_REPLICAS ?= 1

.PHONY: setup run serve test test-postgres lint format clean bench bench-smoke bench-orders bench-slow \
	browser nginx haproxy bench-front bench-fleet bench-tracing \
	bench-overhead mutation

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## setup: virtualenv, pinned install, database migrated and seeded, static files collected
setup: $(VENV)/.installed
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0

## run: both services and the fault proxy between them, logs interleaved; Ctrl-C stops all
run: setup
	$(BIN)/python scripts/run_services.py --users-port $(USERS_PORT) --orders-port $(ORDERS_PORT) --proxy-port $(PROXY_PORT) --users-replicas $(USERS_REPLICAS)

## serve: both services under gunicorn (threads) behind nginx, production settings: needs
## DJANGO_SECRET_KEY (the fault proxy only with FAULT_PROXY=1); installs nginx (root)
serve: setup nginx
	$(BIN)/python scripts/run_services.py --server gunicorn --users-port $(USERS_PORT) --orders-port $(ORDERS_PORT) --proxy-port $(PROXY_PORT) --users-replicas $(USERS_REPLICAS)

## test: lint, then the whole suite (unit, integration over real HTTP, real processes, a browser)
test: setup lint browser nginx haproxy
	$(BIN)/python -m pytest

## test-postgres: the same suite against a local PostgreSQL (installs Debian's package: root)
POSTGRES_URL ?= postgres://resilient:resilient@127.0.0.1:5432/resilient
test-postgres: setup
	bash scripts/postgres.sh
	DATABASE_URL=$(POSTGRES_URL) E2E_DATABASE_URL=$(POSTGRES_URL) $(BIN)/python -m pytest

## browser: headless Chromium and chromedriver from Debian's packages, for the page's test (root)
browser:
	bash scripts/browser.sh

## nginx: Debian's nginx, the front server of `make serve` and of the hostile-caller tests (root)
nginx:
	bash scripts/debian_server.sh nginx

## haproxy: Debian's HAProxy, the load balancer bench-fleet compares against (root)
haproxy:
	bash scripts/debian_server.sh haproxy

## mutation: mutmut over the resilience layer (~1 h on 2 cores); `.venv/bin/mutmut results` lists survivors
mutation: $(VENV)/.installed
	$(BIN)/mutmut run

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis db.sqlite3 db.sqlite3-*

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

## bench: the full benchmark (~40 min): raw samples in bench/out/; figures (bench/results.json), docs/benchmarks.md, the chart
bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.load_under_outage
	$(BIN)/python -m bench.proxy_latency
	$(BIN)/python -m bench.call_timeout
	$(BIN)/python -m bench.slow_users --baseline-ref $(SLOW_BASELINE_REF) --max-concurrency 8,32
	$(BIN)/python -m bench.report

## bench-slow: a slow Users under open-loop load (~8 min): today's code (SLOW_BASELINE_REF, main
## before the bulkhead) beside this one, USERS_MAX_CONCURRENCY 8 and 32, hedging; figures in
## bench/slow_users.json, chart docs/slow-users.png, its section of docs/benchmarks.md
SLOW_BASELINE_REF ?= 3aed396
bench-slow: $(VENV)/.bench-installed
	$(BIN)/python -m bench.slow_users --baseline-ref $(SLOW_BASELINE_REF) --max-concurrency 8,32
	$(BIN)/python -m bench.report

## bench-front: nginx in front of gunicorn or not, same run (~4 min): prober p99 under 0, 64 and
## 256 slowloris connections, the healthy path's latency and throughput; figures in
## bench/front_door.json, its section of docs/benchmarks.md
bench-front: $(VENV)/.bench-installed nginx
	$(BIN)/python -m bench.front_door
	$(BIN)/python -m bench.report

## bench-fleet: three Users replicas, replica 3 bad (503, slow, down, reset), open-loop (~20 min):
## today's code (FLEET_BASELINE_REF) behind HAProxy http and tcp, this tree behind HAProxy tcp and
## listing the replicas (p2c, round robin); installs Debian's haproxy (root).
## Figures in bench/fleet.json, chart docs/fleet.png, its section of docs/benchmarks.md
FLEET_BASELINE_REF ?= f2d95fa
bench-fleet: $(VENV)/.bench-installed haproxy
	$(BIN)/python -m bench.fleet --baseline-ref $(FLEET_BASELINE_REF)
	$(BIN)/python -m bench.report

## bench-tracing: what OpenTelemetry costs a healthy call, off / console / OTLP / sampled (~5 min);
## figures in bench/tracing.json, its section of docs/benchmarks.md
bench-tracing: $(VENV)/.bench-installed
	$(BIN)/python -m bench.tracing
	$(BIN)/python -m bench.report

## bench-overhead: a healthy call through this library and through its peers (tenacity, stamina,
## pybreaker, urllib3's Retry, httpx-retries), over a socket and on a canned transport; threads,
## open-breaker refusals, allocations (~8 min); figures in bench/overhead.json, chart
## docs/overhead.png, its section of docs/benchmarks.md
bench-overhead: $(VENV)/.bench-installed
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.report

## bench-smoke: the benchmark machinery in seconds (CI runs it inside `make test`)
bench-smoke: $(VENV)/.installed
	$(BIN)/python -m bench.run --smoke --out bench/out/smoke.json

## bench-orders: POST /orders/ throughput and p99 (~3 min): bench/out/post_orders.json and its
## section of docs/benchmarks.md; BASELINE_REF=<git rev> adds that version on its own stack,
## BENCH_POSTGRES_URL=postgres://... this version on PostgreSQL too
bench-orders: $(VENV)/.installed
	$(BIN)/python -m bench.post_orders --docs $(if $(BASELINE_REF),--baseline-ref $(BASELINE_REF)) \
		$(if $(BENCH_POSTGRES_URL),--postgres $(BENCH_POSTGRES_URL))
