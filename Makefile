# Every target bootstraps what it needs: uv (from PyPI, if missing) and the locked .venv.
# `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
# Prefer a uv on PATH; otherwise bootstrap a pinned one from PyPI into .tools/.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV_STAMP := .venv/.synced
RUN := $(UV) run --frozen --no-sync
# Run the topology in Docker when an engine answers, else as local processes; while a local topology
# runs (.run/topology.pid alive), up/down/logs keep to it. Override: USE_DOCKER=1 or USE_DOCKER=0.
USE_DOCKER ?= $(shell if [ -f .run/topology.pid ] && kill -0 "$$(cat .run/topology.pid)" 2>/dev/null; then echo 0; \
	elif docker info >/dev/null 2>&1; then echo 1; else echo 0; fi)
PYTEST_ARGS ?=
# DPOP=accept|require (docs/dpop.md): the settings it stands for, for compose as for local processes
# (scripts/dpop_switch.py does the same from .env's DPOP); each stays as given when given too.
ifeq ($(DPOP),require)
export AUTH_DPOP ?= require
export CRM_MCP_DPOP ?= true
export CRM_API_AUTH_MODE ?= exchange
export CALENDAR_AUTH_DPOP ?= require
export CALENDAR_AUTH_SERVER_DPOP ?= require
else ifeq ($(DPOP),accept)
export AUTH_DPOP ?= accept
export CRM_MCP_DPOP ?= true
endif

.PHONY: help
help: ## Show this help
	@echo "Usage: make up, then make demo, then make down. make test runs every test."
	@awk 'BEGIN {FS = ":.*## "; printf "Targets:\n"} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: USE_DOCKER=1|0 forces Docker Compose or local processes (default: Docker if an engine answers)."
	@echo "           CRM_API_AUTH_MODE=cascade|exchange picks pattern 3 or 3b for crm-mcp → crm-api (default: .env's)."
	@echo "           CALENDAR_AUTH_MODE=consent|cross-app-access picks pattern 4 or 5 for the calendar tools (default: .env's)."
	@echo "           DPOP=accept|require turns DPoP on (docs/dpop.md); require binds every token of the demo to a key."
	@echo "           REPLICAS=N (make up) runs the scaled topology: PostgreSQL, Redis, N crm-mcp replicas, two of most"
	@echo "           others, behind HAProxy on the same ports (local processes; docs/scale-out.md)."
	@echo "           VERBOSE=1 shows Docker's full build output (make up); KEEP_DATA=1 keeps the data (make down);"
	@echo "           SOAK_SECONDS=N sets how long make soak runs (default 60)."
	@echo "           REPEAT=N runs make bench N times and prints each ratio's spread; PROFILE=1 adds its profiles."

.tools/bin/uv:
	@echo "uv not found: installing uv $(UV_VERSION) from PyPI into .tools/"
	@$(PYTHON) -m venv .tools
	@.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV_STAMP): uv.lock pyproject.toml shared/pyproject.toml devkit/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	@$(UV) sync --frozen --all-packages --quiet
	@touch $@

.PHONY: install
install: $(VENV_STAMP) ## Create .venv from the lock file (every other target does this itself)

.env: | $(VENV_STAMP)
	@$(RUN) python -m scripts.topology init-env

.PHONY: up
up: install .env ## Start all services (Docker if an engine answers, else local processes) and wait until healthy
ifneq ($(REPLICAS),)
	@REPLICAS="$(REPLICAS)" $(RUN) python -m scripts.scaled_topology up
else ifeq ($(USE_DOCKER),1)
	@mkdir -p .run/traces && chmod 1777 .run/traces  # the containers' user writes its trace files here
ifeq ($(VERBOSE),1)
	docker compose up --build --wait
else
	@mkdir -p .run
	@echo "Building the images (output: .run/compose-build.log; VERBOSE=1 shows it here)…"
	@docker compose build > .run/compose-build.log 2>&1 \
		|| { tail -n 40 .run/compose-build.log; echo "Build failed: see .run/compose-build.log"; exit 1; }
	@echo "Starting the services and waiting until they are healthy…"
	@docker compose up --wait --quiet-pull 2> .run/compose-up.log \
		|| { tail -n 40 .run/compose-up.log; echo "Start failed: see .run/compose-up.log and make logs"; exit 1; }
endif
	@$(RUN) python -m scripts.topology banner
else
	@$(RUN) python -m scripts.topology up
endif

.PHONY: down
down: ## Stop what `make up` started and delete its data (keys, databases, traces, log) unless KEEP_DATA=1; .env stays
ifeq ($(USE_DOCKER),1)
	docker compose down --remove-orphans $(if $(filter 1,$(KEEP_DATA)),,--volumes)
else
	@if [ -f "$${TOPOLOGY_DIR:-.}/.run/scaled/state.json" ]; then KEEP_DATA="$(KEEP_DATA)" $(RUN) python -m scripts.scaled_topology down; \
	else KEEP_DATA="$(KEEP_DATA)" $(RUN) python -m scripts.topology down; fi
endif

.PHONY: logs
logs: ## Follow the services' logs
ifeq ($(USE_DOCKER),1)
	docker compose logs --follow --tail 50
else
	@test -f .run/topology.log || { echo "No logs yet: run make up first."; exit 1; }
	@tail -n 50 -F .run/topology.log
endif

.PHONY: demo
demo: install .env ## Log in as a demo user and call one tool per pattern against the running topology
	@$(RUN) python -m scripts.demo

.PHONY: trace
trace: install ## Draw the latest customer_briefing trace (or TRACE=<id>) as a waterfall with each hop's credential
	@$(RUN) python -m scripts.trace $(TRACE)

.PHONY: test
test: install ## Run the whole test suite (unit, attack catalog, auth server, integration, scripts, docs)
	@$(RUN) pytest $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff check, ruff format --check, mypy, compose and Kubernetes schema checks
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@$(RUN) mypy shared/src services/*/src devkit/src scripts
	@$(RUN) check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	@$(RUN) python -m scripts.k8s_manifests check

.PHONY: fmt
fmt: install ## Apply ruff fixes and formatting
	@$(RUN) ruff check --fix .
	@$(RUN) ruff format .

.PHONY: bench
bench: install ## Measure what each design choice buys: ratios with targets, request counts, scaling
	@$(RUN) python -m scripts.bench $(if $(REPEAT),--repeat $(REPEAT)) $(if $(PROFILE),--profile)

.PHONY: soak
soak: install ## Several users call the tools of patterns 1-4 for SOAK_SECONDS on a fresh topology; errors, memory
	@$(RUN) python -m scripts.soak

.PHONY: rotate-keys
rotate-keys: install .env ## Add an auth-server signing key: published now, signs in 60 s; old keys stay published
	@$(RUN) python -m auth_server.keys rotate

.PHONY: rotate-client
rotate-client: install .env ## Add a crm-mcp client key (private_key_jwt): published now, signs in 60 s; old one stays a while
	@$(RUN) python -m crm_mcp.client_keys rotate

.PHONY: clean
clean: ## Remove .venv, .tools and local runtime data (signing keys, databases, compose volumes)
	-@docker info >/dev/null 2>&1 && docker compose down --volumes --remove-orphans
	rm -rf .venv .tools .run data .pytest_cache .mypy_cache .ruff_cache
