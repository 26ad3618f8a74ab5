# Two commands: `make demo` runs a simulated scenario end to end; `make test` runs the checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM ?= npm
# The web console is built from web/ into the package's static folder (git-ignored); the node and
# the centre serve it. npm ci runs again only when the lock file changes.
WEB_STATIC := src/borderwatch/edge/web/static
WEB_STAMP := $(WEB_STATIC)/.built
WEB_DEPS := web/node_modules/.installed
WEB_SOURCES := $(shell find web/src web/i18n -type f 2>/dev/null) web/index.html web/icon.svg web/build.mjs

.PHONY: demo test lint bench clean web

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
	touch $(WEB_DEPS)

$(WEB_STAMP): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && node build.mjs
	touch $(WEB_STAMP)

web: $(WEB_STAMP)

demo: $(STAMP) web
	$(BIN)/borderwatch demo

test: $(STAMP) web
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP) web
	$(BIN)/borderwatch bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache web/node_modules $(WEB_STATIC)
