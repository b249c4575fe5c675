# Every target creates .venv and installs the project first; nothing else needs to be set up.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
INSTANCE ?= instance
BIND   ?= 127.0.0.1:5000
WORKERS ?= 2
PORT   ?= 5001

.PHONY: run lint test test-fast bench clean example

# Two stamps: running needs the runtime dependencies only (`pip install -e .`); the tests add
# the test extras (Playwright, mypy, ruff, ...) on top.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# `uauth serve` checks the port first and says who holds it; `init` creates the instance once.
run: $(RUN_STAMP)
	$(BIN)/uauth --instance $(INSTANCE) init
	$(BIN)/uauth --instance $(INSTANCE) serve --bind $(BIND) --workers $(WORKERS)

# ruff; mypy --strict on uauth, tests and bench ([tool.mypy] in pyproject.toml, warn_unused_ignores);
# the import-layer contract ([tool.importlinter]) once pyproject.toml has one. Tool versions are
# pinned exactly in the test extra. tests/test_static_checks.py runs ruff and mypy too, so pytest
# alone catches a regression (cheap: mypy reuses .mypy_cache).
LINT_PATHS := uauth tests bench examples
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	@if grep -q '^\[tool\.importlinter\]' pyproject.toml; then \
	  echo "$(BIN)/lint-imports"; $(BIN)/lint-imports; \
	else \
	  echo "lint-imports: SKIPPED, no [tool.importlinter] contract in pyproject.toml yet"; \
	fi

# lint first, then the whole suite (.ci/run calls this).
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Notes, a Flask app with its own users and login page that embeds uauth (docs/embedding.md).
# `make example PORT=5002` serves it elsewhere; it prints the URLs it really serves.
example: $(RUN_STAMP)
	NOTES_UAUTH_ISSUER=http://127.0.0.1:$(PORT)/auth $(BIN)/flask --app examples/embedded/notes demo
	NOTES_UAUTH_ISSUER=http://127.0.0.1:$(PORT)/auth $(BIN)/flask --app examples/embedded/notes \
	  run --port $(PORT)

# The same suite without the slow browser/load tests (CI always runs everything).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# Benchmarks (bench/, see docs/performance.md): starts its own servers, prints tables; a couple
# of minutes. BENCH_ARGS="--help" lists the options, e.g. --memory 10000 for the leak check.
# The reference provider (panva's oidc-provider) is installed outside the project, under
# /tmp/node-op, when npm is available; without it the bench still measures uauth.
REFERENCE_DIR ?= /tmp/node-op
$(REFERENCE_DIR)/node_modules/oidc-provider:
	@command -v npm >/dev/null 2>&1 && { mkdir -p $(REFERENCE_DIR) && cd $(REFERENCE_DIR) && \
	  npm init -y >/dev/null && npm install --silent oidc-provider@9 jose; } || \
	  echo "npm not found: the bench runs without the reference provider"

bench: $(STAMP) $(REFERENCE_DIR)/node_modules/oidc-provider
	UAUTH_BENCH_REFERENCE=$(REFERENCE_DIR) $(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .pytest-tmp build *.egg-info
