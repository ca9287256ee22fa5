VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test run demo lint typecheck bench soak fuzz protos clean

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
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache demo/provider/node_modules
