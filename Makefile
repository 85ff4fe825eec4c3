# The project's commands. Each one creates/updates the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo test lint dev bench browser postgres clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Headless Chromium for the UI test, from Debian's packages (needs root or sudo).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

# PostgreSQL server binaries for the Dagster-on-PostgreSQL tests and AZAION_INSTANCE=postgres
# (Debian's package; azaion_pipeline/services/postgres.py runs it unprivileged in a temp dir).
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q postgresql; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv browser postgres lint
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/azaion-pipeline demo

dev: venv postgres
	$(BIN)/azaion-pipeline dev

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .dagster_home azaion-data .pytest_cache .ruff_cache
