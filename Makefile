# mldeploy — the two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo test test-tools test-unit test-middle test-integration test-kubernetes lint typecheck bench reference server pool flows worker models help cluster-build cluster-up cluster-down

help:
	@echo "make setup   - idempotent: venv, container engine, registry on 127.0.0.1:5000, base image, example models"
	@echo "make demo    - deploy the diabetes example locally through a Prefect server and print the endpoint"
	@echo "make test    - lint, type check, unit, middle, real-engine integration and Kubernetes tests"
	@echo "make bench   - deploy benchmark (cold, no-op, score.py-only) -> table"
	@echo "make server  - a local Prefect server (SQLite) on 127.0.0.1:4200"
	@echo "make flows   - the process work pool and every deployment of prefect.yaml"
	@echo "make worker  - a process worker for those deployments"
	@echo "make cluster-up / cluster-down - the test Kubernetes (built from Go modules) on 127.0.0.1"

setup:
	@bash scripts/setup.sh
	@$(MAKE) --no-print-directory models

models:
	@for ex in diabetes iris; do \
	  if [ ! -e deployments/examples/$$ex/model ]; then $(PY) deployments/examples/$$ex/train.py; fi; \
	done

demo: setup
	@bash scripts/demo.sh

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

test-unit:
	$(VENV)/bin/pytest tests/unit -q

test-middle:  ## every stage through .fn() with a fake engine, registry and endpoints (< 1 min)
	$(VENV)/bin/pytest tests/middle -q

test-tools:
	@bash scripts/setup-test-tools.sh

test-integration: test-tools
	MLDEPLOY_REQUIRE_ENGINE=1 $(VENV)/bin/pytest tests/integration -q

test: setup test-tools cluster-build lint typecheck
	MLDEPLOY_REQUIRE_ENGINE=1 MLDEPLOY_REQUIRE_CLUSTER=1 $(VENV)/bin/pytest -q

test-kubernetes: setup cluster-build  ## the Kubernetes tier: brings the test cluster up (and down, if it started it)
	MLDEPLOY_REQUIRE_CLUSTER=1 $(VENV)/bin/pytest tests/kubernetes -q

bench: setup
	$(PY) bench/deploy_bench.py

reference:  ## the JSON Schema and README key table, regenerated from the spec's declaration
	$(PY) scripts/update-reference.py

# --- Prefect: server, work pool, deployments (prefect.yaml) and a worker -------------------------
PREFECT_API_URL ?= http://127.0.0.1:4200/api
POOL ?= mldeploy-process
export MLDEPLOY_REPO := $(CURDIR)

server:
	@bash scripts/prefect-server.sh >/dev/null && echo "Prefect server: $(PREFECT_API_URL:/api=)"

pool: server
	@PREFECT_API_URL=$(PREFECT_API_URL) $(VENV)/bin/prefect work-pool inspect $(POOL) >/dev/null 2>&1 \
	  || PREFECT_API_URL=$(PREFECT_API_URL) $(VENV)/bin/prefect work-pool create $(POOL) --type process
	@echo "work pool $(POOL) (process) is ready"

flows: setup pool
	PREFECT_API_URL=$(PREFECT_API_URL) $(VENV)/bin/prefect --no-prompt deploy --all

worker: pool
	PREFECT_API_URL=$(PREFECT_API_URL) $(VENV)/bin/prefect worker start --pool $(POOL) --type process

# --- the test Kubernetes: built from Go modules, one node, 127.0.0.1 only (docs/kubernetes-cluster.md) ----
cluster-build:
	@bash scripts/cluster-build.sh

cluster-up: setup cluster-build
	@bash scripts/cluster-up.sh

cluster-down:
	@bash scripts/cluster-down.sh
