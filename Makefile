# netguard: build, test, demo and package.   make test | make demo | make package STAGE=prod
#
# Everything runs from the project's own virtualenv (.venv), created on first use and re-installed
# whenever requirements*.txt or pyproject.toml change (the stamp file .venv/.installed).

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAGE ?= dev
STAGES := dev prod
BUILD ?= build
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: venv .venv test demo package lint-templates clean distclean

venv .venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/netguard demo

# Chalice zips chalicelib/ whole, bytecode included: clean it first. Writes $(BUILD)/deployment.zip
# and $(BUILD)/sam.json. Deploy the template as stack netguard-$(STAGE): the log permissions in
# .chalice/policy-$(STAGE).json are scoped to /aws/lambda/netguard-$(STAGE)-*.
package: $(STAMP)
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf $(BUILD)
	$(BIN)/chalice package --stage $(STAGE) $(BUILD)
	$(BIN)/cfn-lint $(BUILD)/sam.json
	@echo "stage $(STAGE): $(BUILD)/deployment.zip $(BUILD)/sam.json"

# Package every stage into $(BUILD)/<stage>/ and lint all the templates.
lint-templates: $(STAMP)
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	for stage in $(STAGES); do \
	  rm -rf $(BUILD)/$$stage && $(BIN)/chalice package --stage $$stage $(BUILD)/$$stage || exit 1; \
	done
	$(BIN)/cfn-lint $(foreach stage,$(STAGES),$(BUILD)/$(stage)/sam.json)

clean:
	rm -rf $(BUILD) .pytest_cache .chalice/deployments *.egg-info netguard-ledger.jsonl
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
