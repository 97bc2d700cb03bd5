# The two set-up commands of vidrec. Each creates .venv when missing, installs torch==2.13.0
# first (so pip never pulls a CUDA build through a looser range), then the project.
PY ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Debian packages some tests need (real RTSP server, browser). Idempotent; root only.
system-deps:
	bash scripts/install_system_deps.sh

# The whole service on http://127.0.0.1:$(PORT) (8000; `make run PORT=8080` for another) with
# the shipped demo models: an embedded Redis (none to install), one worker process and the
# gateway. Ctrl-C stops it in order. Settings come from VIDREC_* variables (docs/OPERATIONS.md);
# VIDREC_REDIS_URL uses an existing Redis instead.
run: $(STAMP)
	$(BIN)/vidrec serve --host 127.0.0.1 --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
