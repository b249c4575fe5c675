# Every target creates .venv and installs the project first; nothing else needs to be set up.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INSTANCE ?= instance
BIND   ?= 127.0.0.1:5000
WORKERS ?= 2

.PHONY: run test test-fast bench clean example example-mcp

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/uauth --instance $(INSTANCE) init
	$(BIN)/uauth --instance $(INSTANCE) serve --bind $(BIND) --workers $(WORKERS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Notes, a Flask app with its own users and login page that embeds uauth (README: Embedding).
example: $(STAMP)
	$(BIN)/flask --app examples/embedded/notes demo
	$(BIN)/flask --app examples/embedded/notes run --port 5001

# Notes MCP, an MCP server protected by uauth (examples/mcp/README.md): run `make run` beside it.
example-mcp: $(STAMP)
	$(BIN)/python -m examples.mcp.server --port 8000

# The same suite without the slow browser/load tests (CI always runs everything).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# Benchmarks (bench/, see README "Performance"): starts its own servers, prints tables; a couple
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
