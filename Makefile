# Two commands do all the set-up on a fresh machine:
#   make demo   installs everything and runs the demo shop behind the proxy
#   make test   installs everything the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install install-test bundle bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# npm packages come from static/package-lock.json; the bundle is built, never committed.
bundle:
	npm ci --prefix static --no-audit --no-fund --loglevel=error
	node static/build.mjs

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

install: $(STAMP) bundle

demo: install
	$(BIN)/cobrowse demo

install-test: install
	$(BIN)/python -m pip install -q -e '.[test]'
	bash scripts/install-test-deps.sh

test: install-test
	$(BIN)/python -m pytest -q

# Benchmarks report side by side (nginx, HAProxy, mitmdump, a Node ws relay); see docs/benchmarks.md.
bench: install-test
	npm ci --prefix bench/node --no-audit --no-fund --loglevel=error
	$(BIN)/python bench/http_proxy.py
	$(BIN)/python bench/hub.py
	$(BIN)/python bench/browser.py
	$(BIN)/python bench/markers.py

clean:
	rm -rf $(VENV) static/node_modules cobrowse/static_dist .pytest_cache
