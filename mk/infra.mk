# Infrastructure: template checks, SAM build, stack outputs. Included by the root Makefile
# (`-include mk/*.mk`); works on its own too: `make -f mk/infra.mk lint-template`.
#
# checkov and the SAM CLI pin conflicting boto3 versions, so each has its own venv:
#   .venv-infra  checkov      (requirements-infra.txt)
#   .venv-sam    aws-sam-cli  (requirements-sam.txt; brings cfn-lint too)

# Lambda runs python3.12, and `sam build` needs that exact interpreter on PATH. pyenv's shim
# does not switch versions here, so look for the real binary first.
INFRA_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) \
                  $(shell command -v python3.12 2>/dev/null) $(shell command -v python3 2>/dev/null))
INFRA_VENV := .venv-infra
PIP_NOISE ?= is ignored: it is neither a file nor a directory
SAM_VENV := .venv-sam
INFRA_STAMP := $(INFRA_VENV)/.stamp-$(shell sha1sum requirements-infra.txt 2>/dev/null | cut -c1-12)
SAM_STAMP := $(SAM_VENV)/.stamp-$(shell sha1sum requirements-sam.txt 2>/dev/null | cut -c1-12)
SAM := SAM_CLI_TELEMETRY=0 PATH="$(abspath $(dir $(INFRA_PYTHON))):$$PATH" $(SAM_VENV)/bin/sam
SAM_BUILD_DIR ?= .aws-sam/build
STACK ?= directupload-dev
REGION ?=
CONFIG_JSON ?= client-demo/config.json

.PHONY: infra-venv lint-template sam-build outputs test-infra

$(INFRA_STAMP): requirements-infra.txt
	@echo "==> checkov venv $(INFRA_VENV) ($(INFRA_PYTHON))"
	@test -x $(INFRA_VENV)/bin/python || $(INFRA_PYTHON) -m venv $(INFRA_VENV)
	@set -o pipefail; $(INFRA_VENV)/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@set -o pipefail; $(INFRA_VENV)/bin/python -m pip install -q -r requirements-infra.txt 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@rm -f $(INFRA_VENV)/.stamp-* && touch $@

$(SAM_STAMP): requirements-sam.txt
	@echo "==> SAM CLI venv $(SAM_VENV) ($(INFRA_PYTHON))"
	@test -x $(SAM_VENV)/bin/python || $(INFRA_PYTHON) -m venv $(SAM_VENV)
	@set -o pipefail; $(SAM_VENV)/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@set -o pipefail; $(SAM_VENV)/bin/python -m pip install -q -r requirements-sam.txt 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@rm -f $(SAM_VENV)/.stamp-* && touch $@

infra-venv: $(INFRA_STAMP) $(SAM_STAMP) ## venvs for checkov and the SAM CLI (once; again when their pins change)

lint-template: infra-venv ## cfn-lint and checkov over template.yaml
	@$(SAM_VENV)/bin/cfn-lint template.yaml
	@$(INFRA_VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

sam-build: infra-venv ## sam build into .aws-sam/build (arm64, python3.12), ready for sam deploy
	@$(SAM) build --template-file template.yaml --build-dir $(SAM_BUILD_DIR) --cached

outputs: infra-venv ## write client-demo/config.json from a deployed stack's outputs (STACK=directupload-dev REGION=...)
	@$(SAM_VENV)/bin/python scripts/stack_outputs.py --stack $(STACK) --out $(CONFIG_JSON) $(if $(REGION),--region $(REGION))

test-infra: infra-venv ## the template tests only (cfn-lint, SAM translation, checkov, sam build)
	@$(or $(BIN),$(abspath .venv)/bin)/python -m pytest tests/infra -q
