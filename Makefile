# One Makefile. `make demo` and `make test` work on a fresh clone: they create .venv and install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck contracts check bench kind-up kind-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m extender.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check extender autoscaler tests bench
	$(BIN)/ruff format --check extender autoscaler tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

check: test lint typecheck contracts

bench: $(STAMP)
	$(BIN)/python bench/extender.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
