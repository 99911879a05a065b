# One command per verb. `make help` lists them.
SHELL := /bin/bash
VENV := .venv/bin
BUF := tools/node_modules/.bin/buf
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV):$(PATH)

.PHONY: help install run generate check-generate readme-options lint test test-server test-process \
	test-scripts test-python-client test-go test-typescript test-java test-conformance test-monitoring \
	test-readme-walk check bench bench-speed windows-memory windows-memory-server cluster-bench monitoring-check \
	load soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: ## Install every pinned tool and dependency (idempotent)
	bash scripts/install-tools.sh

run: install ## Install, then start the server on the defaults (loopback: gRPC :50051, metrics :9464)
	$(VENV)/cugar-metrics serve

generate: ## Regenerate every client's code and the API reference from protos/
	$(BUF) generate
	touch proto-python/gen/cugar/metrics/v1/py.typed

check-generate: generate ## Fail when the committed generated code differs from a fresh generation
	@if [ -n "$$(git status --porcelain -- proto-python/gen clients/go/gen clients/typescript/src/gen docs/api)" ]; then \
	  git status --porcelain -- proto-python/gen clients/go/gen clients/typescript/src/gen docs/api; \
	  echo "generated code is stale: run 'make generate' and commit the result" >&2; exit 1; fi

readme-options: ## Rewrite README.md's configuration table from the option declarations
	$(VENV)/python scripts/readme_options.py

lint: ## buf format/lint/breaking, ruff, mypy, no skipped or assertion-less tests
	$(BUF) format -d --exit-code
	$(BUF) lint
	bash scripts/buf-breaking.sh
	$(VENV)/ruff check server clients/python/src clients/python/tests clients/python/examples tests bench scripts
	$(VENV)/ruff format --check server clients/python/src clients/python/tests clients/python/examples tests bench scripts
	$(VENV)/python scripts/check-tests.py
	$(VENV)/mypy

test-server: ## The server in-process: validation, aggregator, exposition, gRPC, auth, TLS, persistence
	$(VENV)/pytest tests/server

test-process: ## The real `cugar-metrics serve` process: lifecycle, faults, restarts, TLS, keys
	$(VENV)/pytest tests/process

test-scripts: ## The repository's own scripts: buf-breaking.sh in fresh clones, check-tests.py
	$(VENV)/pytest tests/scripts

test-python-client: ## The Python client: install and lint it, then its tests against the real server
	bash scripts/ci/python-client.sh
	$(VENV)/pytest clients/python/tests

test-go: ## The Go client: vet and go test against the real server
	bash scripts/ci/go.sh

test-typescript: ## The TypeScript client: type check, build, tests against the real server
	bash scripts/ci/typescript.sh

test-java: ## The Java client: Maven verify against the real server, and its conformance runner
	bash scripts/ci/java.sh

test-conformance: ## Every client runs the shared scenario (after the clients' suites build them)
	bash scripts/ci/conformance.sh

test-monitoring: ## Rules, alert tests, Alertmanager, Dockerfile, Kubernetes, e2e with a real Prometheus
	bash scripts/ci/monitoring.sh

test-readme-walk: ## Each client README's first example in a fresh clone (when scripts/ci/readme-walk.sh exists)
	@if [ -e scripts/ci/readme-walk.sh ]; then bash scripts/ci/readme-walk.sh; fi

# In this order: the server first, then each client, then what needs every client built.
test: ## Every test in every language
	$(MAKE) test-server
	$(MAKE) test-process
	$(MAKE) test-scripts
	$(MAKE) test-python-client
	$(MAKE) test-go
	$(MAKE) test-typescript
	$(MAKE) test-java
	$(MAKE) test-conformance
	$(MAKE) test-monitoring
	$(MAKE) test-readme-walk

check: install check-generate lint test ## Install, then everything CI checks

monitoring-check: test-monitoring ## The same as test-monitoring

bench: install ## Server benchmarks; writes bench/results/
	$(VENV)/python bench/run_server_bench.py

bench-speed: install ## The ingest speed table beside a do-nothing servicer (about 6 minutes); writes bench/results/speed.*
	$(VENV)/python bench/ingest_speed.py

load: install ## 10/50/100 concurrent agents and the API keys + TLS overhead (a few minutes); writes bench/results/load.*
	$(VENV)/python bench/load_soak.py load

soak: install ## 30 minutes at half the load maximum (MINUTES=2 for a short check); writes bench/results/soak.*
	$(VENV)/python bench/load_soak.py soak $(if $(MINUTES),--minutes $(MINUTES))

windows-memory: install ## Aggregator at the caps over a simulated hour + 5 M dedup ids: RSS, read p99, ingest cost
	$(VENV)/python bench/windows_memory.py

windows-memory-server: install ## The real server at the caps for MINUTES (default 10): RSS every 10 s
	$(VENV)/python bench/windows_server_memory.py $(if $(MINUTES),--minutes $(MINUTES))

cluster-bench: install ## 3 replicas at the caps: cluster GetDashboard p50/p95/p99, 100 watchers' CPU (about 5 minutes); writes bench/results/cluster.*
	$(VENV)/python bench/cluster_bench.py --before bench/results/cluster-before.json
