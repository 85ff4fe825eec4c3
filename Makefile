# The project's commands. Each one creates/updates the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo test lint dev bench browser rabbitmq postgres clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

# From Debian's packages (needs root or sudo), each installed only when missing: headless
# Chromium for the UI test, and RabbitMQ 3.10 with its streams plugin for the annotation intake
# (the local stack and the tests start their own unprivileged loopback node from it; the
# package's system service is unused).
apt_install = missing=$$(for package in $(1); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; done); \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$missing; }

browser:
	@$(call apt_install,chromium rabbitmq-server)

rabbitmq:
	@$(call apt_install,rabbitmq-server)

# PostgreSQL server binaries for the Dagster-on-PostgreSQL tests and AZAION_INSTANCE=postgres
# (Debian's package; azaion_pipeline/services/postgres.py runs it unprivileged in a temp dir).
postgres:
	@$(call apt_install,postgresql)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv browser postgres lint
	$(BIN)/python -m pytest

demo: venv rabbitmq
	$(BIN)/azaion-pipeline demo

dev: venv rabbitmq postgres
	$(BIN)/azaion-pipeline dev

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .dagster_home azaion-data .pytest_cache .ruff_cache
