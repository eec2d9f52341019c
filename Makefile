# pkiaas — developer entry points. `make run` and `make test` are all a new
# user needs; both install missing Debian packages first (scripts/deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
DATA       ?= .pkiaas-data
HTTP       ?= 127.0.0.1:8080
HTTPS      ?= 127.0.0.1:8443
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST     ?= /usr/bin/python3 -m pytest
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps ui build build-asan run test unit unit-asan integration integration-pg integration-asan fuzz bench clean

all: build

deps:
	@./scripts/deps.sh

build: deps ui
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Swagger UI static files (swagger-ui-dist from npm, pinned in
# ui/swagger/package-lock.json), served at /cagw/swagger-ui; and the web
# portal (ui/portal: Preact + TypeScript, built by Vite into ui/portal/dist,
# served at / and /portal/), rebuilt when its sources change. Node is only
# needed here, never at run time. playwright-core (the portal's browser
# tests) never downloads a browser: the tests drive Debian's chromium.
PORTAL_SRC := $(shell find ui/portal/src -type f 2>/dev/null) ui/portal/index.html ui/portal/vite.config.ts ui/portal/tsconfig.json

ui: ui/swagger/node_modules/swagger-ui-dist/index.html ui/portal/dist/index.html

ui/swagger/node_modules/swagger-ui-dist/index.html: ui/swagger/package.json ui/swagger/package-lock.json
	@cd ui/swagger && npm ci --no-audit --no-fund --loglevel=error

# `npm ci` refuses this lockfile on npm 11 (it lists rollup's optional
# builds for other platforms only by name, and ci then calls the lock out of
# sync); `npm install` installs the same locked versions without rewriting it.
ui/portal/node_modules/.package-lock.json: ui/portal/package.json ui/portal/package-lock.json
	@cd ui/portal && export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 && \
	  { npm ci --no-audit --no-fund --loglevel=silent 2>/dev/null || npm install --no-audit --no-fund --loglevel=error; }

ui/portal/dist/index.html: ui/portal/node_modules/.package-lock.json $(PORTAL_SRC)
	@cd ui/portal && npx --no-install tsc --noEmit && npx --no-install vite build --logLevel warn

build-asan: deps ui
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPKIAAS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@./scripts/run-demo.sh $(BUILD) $(DATA) $(HTTP) $(HTTPS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure

unit-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure

integration: build
	@PKIAAS_BUILD_DIR=$(CURDIR)/$(BUILD) $(PYTEST) -q tests/integration

# The store conformance suite (tests/unit/store; `make unit` runs it on
# SQLite) and the integration suite again, on PostgreSQL: a private
# throw-away cluster (scripts/pg-cluster.sh), a database of its own for each
# daemon, plus the multi-node tests that need it. The cluster (in /tmp) is stopped
# and removed whatever the outcome.
integration-pg: build
	@dir=$$(mktemp -d /tmp/pkiaas-pg.XXXXXX) && trap './scripts/pg-cluster.sh stop "$$dir"' EXIT INT TERM && \
	  url=$$(./scripts/pg-cluster.sh start "$$dir") && \
	  psql -X -q -d "$$url" -c "CREATE DATABASE conformance" && \
	  PKIAAS_TEST_STORE=$$(echo "$$url" | sed 's|/postgres?|/conformance?|') $(BUILD)/test_store_conformance && \
	  PKIAAS_TEST_PG="$$url" PKIAAS_BUILD_DIR=$(CURDIR)/$(BUILD) $(PYTEST) -q tests/integration

# The integration suite also runs against the ASan+UBSan daemon: memory
# errors and leaks (checked at the clean SIGTERM exit) fail the run.
integration-asan: build-asan
	@rm -rf $(ASAN_BUILD)/asan-logs && mkdir -p $(ASAN_BUILD)/asan-logs
	@PKIAAS_BUILD_DIR=$(CURDIR)/$(ASAN_BUILD) \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/asan-logs/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/$(ASAN_BUILD)/asan-logs/ubsan \
	  $(PYTEST) -q tests/integration
	@if ls $(ASAN_BUILD)/asan-logs/* >/dev/null 2>&1; then cat $(ASAN_BUILD)/asan-logs/*; echo "sanitizer reports above"; exit 1; fi

# libFuzzer (clang, ASan+UBSan): every fuzz/fuzz_*.c for FUZZ_SECONDS each,
# starting from its seed corpus and the kept crash inputs (fuzz/regressions).
fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPKIAAS_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) $(patsubst fuzz/%.c,--target %,$(wildcard fuzz/fuzz_*.c))
	@./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: unit unit-asan integration integration-pg integration-asan fuzz
	@echo "make test: all suites passed"

bench: build
	@./scripts/deps.sh --bench
	@./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
