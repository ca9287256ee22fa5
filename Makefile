VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test run demo lint typecheck bench soak fuzz protos docs clean

install:
	@bash scripts/bootstrap.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check authz tests bench
	$(VENV)/bin/ruff format --check authz
	$(VENV)/bin/mypy

typecheck: install
	$(VENV)/bin/mypy

run: install
	$(VENV)/bin/authz serve --config examples/authz.yaml

demo: install
	$(PY) -m demo

bench: install
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) -m bench

# Ten minutes at ~70% of measured capacity through real Envoy (SOAK_ARGS="--minutes 2" for less).
soak: install
	$(PY) -m soak $(SOAK_ARGS)

# A million fuzzed inputs through authz's whole Check path (FUZZ_ARGS="--inputs 100000" for fewer).
fuzz: install
	$(PY) -m tests.fuzz $(FUZZ_ARGS)

# Compile protos/ into authz/admin/ (committed; `make test` fails when it is out of date).
protos: install
	$(PY) scripts/protos.py

# docs/configuration.md is generated from the settings model (a unit test fails when it is stale).
docs: install
	$(PY) -m authz.config_docs > docs/configuration.md.new && mv docs/configuration.md.new docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache demo/provider/node_modules
