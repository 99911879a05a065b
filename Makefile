# One command per verb. `make help` lists them.
SHELL := /bin/bash
VENV := .venv/bin
BUF := tools/node_modules/.bin/buf
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV):$(PATH)

.PHONY: help install run generate check-generate lint test test-python check bench monitoring-check load soak windows-memory windows-memory-server

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: ## Install every pinned tool and dependency (idempotent)
	bash scripts/install-tools.sh

run: install ## Install, then start the server on the defaults (gRPC :50051, metrics :9464)
	$(VENV)/cugar-metrics serve --no-auth

generate: ## Regenerate every client's code and the API reference from protos/
	$(BUF) generate
	touch clients/python/gen/cugar/metrics/v1/py.typed

check-generate: generate ## Fail when the committed generated code differs from a fresh generation
	@if [ -n "$$(git status --porcelain -- clients/python/gen clients/go/gen clients/typescript/src/gen docs/api)" ]; then \
	  git status --porcelain -- clients/python/gen clients/go/gen clients/typescript/src/gen docs/api; \
	  echo "generated code is stale: run 'make generate' and commit the result" >&2; exit 1; fi

lint: ## buf format/lint/breaking, ruff, mypy
	$(BUF) format -d --exit-code
	$(BUF) lint
	bash scripts/buf-breaking.sh
	$(VENV)/ruff check server clients/python/src tests bench
	$(VENV)/ruff format --check server clients/python/src tests bench
	$(VENV)/mypy

test-python: ## The Python test suite (unit, integration, end-to-end)
	$(VENV)/pytest tests/unit tests/integration tests/e2e tests/hardening tests/server tests/process

test: test-python ## Every test in every language
	@for s in scripts/ci/*.sh; do [ -e "$$s" ] || continue; echo "==> $$s"; bash "$$s" || exit 1; done

check: install check-generate lint test ## Install, then everything CI checks

monitoring-check: ## Rules, alert tests, Alertmanager, Dockerfile, compose, Kubernetes, dashboard, e2e with Prometheus
	bash scripts/ci/monitoring.sh

bench: install ## Server benchmarks; writes bench/results/
	$(VENV)/python bench/run_server_bench.py

load: install ## 10/50/100 concurrent agents and the API keys + TLS overhead (a few minutes); writes bench/results/load.*
	$(VENV)/python bench/load_soak.py load

soak: install ## 30 minutes at half the load maximum (MINUTES=2 for a short check); writes bench/results/soak.*
	$(VENV)/python bench/load_soak.py soak $(if $(MINUTES),--minutes $(MINUTES))

windows-memory: install ## Aggregator at the caps over a simulated hour + 5 M dedup ids: RSS, read p99, ingest cost
	$(VENV)/python bench/windows_memory.py

windows-memory-server: install ## The real server at the caps for MINUTES (default 10): RSS every 10 s
	$(VENV)/python bench/windows_server_memory.py $(if $(MINUTES),--minutes $(MINUTES))
