# directupload. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs python3.12: the venv matches it where pyenv has it (its shim alone does not switch).
PY312 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
PYTHON ?= $(if $(PY312),$(PY312),python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
DEPS_HASH := $(shell cat requirements-dev.txt functions/requirements.txt 2>/dev/null | sha1sum | cut -c1-12)
VENV_STAMP := $(VENV)/.stamp-$(DEPS_HASH)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
CHROMIUM := /usr/bin/chromium
CLAMSCAN := /usr/bin/clamscan
PYTEST_WORKERS ?= 2
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# pip warns about index locations this machine's pip.conf names but does not have
PIP_NOISE := is ignored: it is neither a file nor a directory

-include mk/*.mk

.PHONY: help setup run check-bucket test check lint format typecheck unit integration e2e token cli upload backend-upload clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements-dev.txt functions/requirements.txt
	@echo "==> Python venv ($(PYTHON))"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@set -o pipefail; $(BIN)/python -m pip install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@set -o pipefail; $(BIN)/python -m pip install -q -r requirements-dev.txt 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@rm -f $(VENV)/.stamp-* && touch $@

$(CHROMIUM):
	@echo "==> Debian packages: chromium (for the browser tests)"
	@$(SUDO) apt-get update -qq
	@DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-liberation >/dev/null

$(CLAMSCAN):
	@echo "==> Debian packages: clamav (the local stack's malware scanner; signatures come with the project)"
	@$(SUDO) apt-get update -qq
	@DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends clamav >/dev/null

setup: $(VENV_STAMP) $(CLAMSCAN) ## create the venv and install everything the local stack needs

run: setup demo-deps ## run the whole system locally on http://127.0.0.1:3000 (Ctrl-C stops); BUCKETS=existing: onto buckets the stack does not own
	@$(BIN)/python -m local.stack --buckets $(or $(BUCKETS),own)

# --dist loadscope: all tests of a module run on one worker, so a module's local stack (a
# module-scoped fixture) starts once. (pytest 9 ignores xdist_group: its node ids no longer take
# the group suffix that --dist loadgroup schedules by.)
test: setup $(CHROMIUM) demo-deps infra-venv ## set everything up and run the whole test suite
	@$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope

unit: setup ## unit tests only (no network)
	@$(BIN)/python -m pytest tests/unit -q

integration: setup ## handlers against moto
	@$(BIN)/python -m pytest tests/integration -q

e2e: setup $(CHROMIUM) demo-deps ## the local stack over HTTP, and the demo page in Chromium
	@$(BIN)/python -m pytest tests/e2e -q

# The CLI package, editable in the venv: .venv/bin/directupload runs client-demo/cli/src as it is.
CLI_STAMP := $(VENV)/.stamp-cli-$(shell cat client-demo/cli/pyproject.toml 2>/dev/null | sha1sum | cut -c1-12)

$(CLI_STAMP): $(VENV_STAMP) client-demo/cli/pyproject.toml
	@echo "==> the CLI package (editable): $(BIN)/directupload"
	@set -o pipefail; $(BIN)/python -m pip install -q -e client-demo/cli 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@rm -f $(VENV)/.stamp-cli-* && touch $@

cli: $(CLI_STAMP) ## install the CLI package into the venv (editable): .venv/bin/directupload
	@:

upload: cli ## upload a file through the CLI client: make upload FILE=clip.mp4 PROFILE=video
	@$(BIN)/directupload upload "$(FILE)" --profile "$(or $(PROFILE),file)"

backend-upload: setup ## upload a file for an owner as a trusted backend (SigV4): make backend-upload FILE=a.png OWNER=alice PROFILE=avatar
	@$(BIN)/python client-demo/backend_example.py "$(FILE)" --local-stack .local/stack.json --owner "$(or $(OWNER),alice)" --profile "$(or $(PROFILE),file)"

check-bucket: setup ## what an existing bucket lacks: make check-bucket STACK=name (a deployed stack, AWS credentials)
	@$(BIN)/python -m scripts.check_bucket --stack $(STACK)

token: setup ## print a bearer token for the local stack: make token USER=alice
	@$(BIN)/python -m local.auth $(USER)

lint: setup ## ruff
	@$(BIN)/ruff check functions local tests client-demo bench scripts
	@$(BIN)/ruff format --check functions local tests client-demo bench scripts

format: setup ## ruff format + fixes
	@$(BIN)/ruff format functions local tests client-demo bench scripts
	@$(BIN)/ruff check --fix functions local tests client-demo bench scripts

typecheck: setup ## mypy
	@$(BIN)/mypy

check: lint typecheck test ## lint, types and tests

clean: ## remove venvs, caches and local state
	rm -rf $(VENV) .venv-* .local .pytest_cache .mypy_cache .ruff_cache .aws-sam client-demo/node_modules \
		client-demo/js/node_modules client-demo/js/types
