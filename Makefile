# The project's commands. Each one creates/updates the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo test lint dev bench browser clean

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

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv browser lint
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/azaion-pipeline demo

dev: venv
	$(BIN)/azaion-pipeline dev

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .dagster_home azaion-data .pytest_cache .ruff_cache
