# The project's commands. Each one creates/updates the virtualenv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: venv demo test lint dev bench browser rabbitmq clean

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

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv browser lint
	$(BIN)/python -m pytest

demo: venv rabbitmq
	$(BIN)/azaion-pipeline demo

dev: venv rabbitmq
	$(BIN)/azaion-pipeline dev

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .dagster_home azaion-data .pytest_cache .ruff_cache
