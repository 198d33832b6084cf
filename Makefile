# netguard: build, test, demo and package.   make test | make test-fast | make demo | make package STAGE=prod
#
# Everything runs from the project's own virtualenv (.venv), created on first use and re-installed
# whenever requirements*.txt or pyproject.toml change (the stamp file .venv/.installed).

SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROWLER_VENV := .venv-prowler
PROWLER_STAMP := $(PROWLER_VENV)/.installed
STAGE ?= dev
STAGES := dev prod
BUILD ?= build
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: venv .venv .venv-bench .venv-prowler lint test test-fast demo package lint-templates templates bench bench-sweep reliability clean distclean

venv .venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Lint and type gate, first thing `make test` does: ruff (rules and the temporary per-file list in pyproject.toml)
# over the repository, mypy over chalicelib.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy chalicelib

# tests/unit: no AWS at all; tests/moto: moto in process or as a server; tests/e2e: end to end (demo,
# multi-account, reliability, threat model, fuzz, Prowler agreement); tests/packaging: chalice package,
# cfn-lint, the stack and its templates, the README. `make test` runs them all.
test: lint $(PROWLER_STAMP)
	$(BIN)/python -m pytest -q

# unit + moto only, no packaging, no end to end: 13 min wall (4.6 min CPU) measured with `time make test-fast`
# on this machine (2 CPUs shared with other jobs, load average about 6).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/moto

demo: $(STAMP)
	$(BIN)/netguard demo

# Reliability figures (README "Reliability", "Threat model", "Agreement with Prowler"): fuzzing, faults,
# blast radius, outages, duplicates, secrets, hostile but valid input, verdicts against Prowler's. Fails
# if a figure does not hold. `make test` (and CI) runs each in a reduced form.
FUZZ_EXAMPLES ?= 10000
FAULT_SEEDS ?= 1,2,3
PROWLER_WORLDS ?= 20
reliability: $(STAMP) $(PROWLER_STAMP)
	$(BIN)/python reliability/fuzz.py --examples $(FUZZ_EXAMPLES)
	$(BIN)/python reliability/faults.py --seeds $(FAULT_SEEDS)
	set -o pipefail; NETGUARD_TEST_BURST=500 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/e2e/test_guards.py \
	  -k "burst or foreign" 2>&1 | grep -E "^blast radius|passed|failed"
	set -o pipefail; $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/e2e/test_reliability.py \
	  tests/moto/test_restore.py 2>&1 | grep -E "alerts during the outage|passed|failed"
	set -o pipefail; $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/e2e/test_threat_model.py \
	  2>&1 | grep -E "^threat model:|passed|failed"
	$(BIN)/python reliability/prowler_diff.py --worlds $(PROWLER_WORLDS) --seed 1 --expect-explained

# Cloud Custodian, for the benchmarks only, in its own virtualenv (c7n pins boto3 < 1.44).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
.venv-bench: $(BENCH_STAMP)
$(BENCH_STAMP): benchmarks/requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-bench.txt
	touch $@

# Prowler, for the agreement test (tests/e2e/test_prowler_agreement.py, reliability/prowler_diff.py), in its
# own virtualenv: installed --no-deps from a pinned list of what `prowler aws` imports (see
# reliability/requirements-prowler.txt). `make test` installs it (about 1.5 min the first time).
.venv-prowler: $(PROWLER_STAMP)
$(PROWLER_STAMP): reliability/requirements-prowler.txt
	test -x $(PROWLER_VENV)/bin/python || $(PYTHON) -m venv $(PROWLER_VENV)
	$(PROWLER_VENV)/bin/python -m pip install --quiet --no-deps -r reliability/requirements-prowler.txt
	touch $@

# netguard against Cloud Custodian on the same work (README "Performance"): figures only, never
# asserted. Per-event and sweep figures run on a plain moto server and on one adding DELAYS ms to
# every request. About an hour on 2 CPUs with the default sizes.
EVENT_SIZES ?= 10,5000
SWEEP_SIZES ?= 2000,10000
DELAYS ?= 0,25
BENCH_RUNS ?= 15
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python benchmarks/cold_start.py -n $(BENCH_RUNS)
	$(BIN)/python benchmarks/per_event.py --sizes $(EVENT_SIZES) --delays $(DELAYS)
	$(BIN)/python benchmarks/sweep.py --sizes $(SWEEP_SIZES) --delays $(DELAYS)
	$(BIN)/python benchmarks/package.py

# The sweep alone, netguard only.
bench-sweep: $(STAMP)
	$(BIN)/python benchmarks/sweep.py --sizes $(SWEEP_SIZES) --delays 0 --tools netguard

# Chalice zips chalicelib/ whole, bytecode included: clean it first. Writes $(BUILD)/deployment.zip
# and $(BUILD)/sam.json: Chalice's SAM template merged with deploy/netguard-stack.yaml (the stage's
# copy, $(BUILD)/netguard-stack-$(STAGE).json, from tools/stack.py). NETGUARD_STAGE names the queues
# the functions read (app.py). Deploy the template as stack netguard-$(STAGE): the log permissions in
# .chalice/policy-$(STAGE).json are scoped to /aws/lambda/netguard-$(STAGE)-*. The member-account and
# tag-guard SCP templates are linted too.
package: $(STAMP)
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf $(BUILD)
	$(BIN)/python -B tools/stack.py check
	$(BIN)/python -B tools/stack.py merge --stage $(STAGE) --out $(BUILD)/netguard-stack-$(STAGE).json
	NETGUARD_STAGE=$(STAGE) $(BIN)/chalice package --stage $(STAGE) \
	  --merge-template $(BUILD)/netguard-stack-$(STAGE).json $(BUILD)
	$(BIN)/cfn-lint $(BUILD)/sam.json deploy/member-account.yaml deploy/tag-guard-scp.yaml
	@echo "stage $(STAGE): $(BUILD)/deployment.zip $(BUILD)/sam.json (member accounts: deploy/member-account.yaml)"

# Package every stage into $(BUILD)/<stage>/ and lint all the templates.
lint-templates: $(STAMP)
	find chalicelib -name __pycache__ -type d -prune -exec rm -rf {} +
	$(BIN)/python -B tools/stack.py check
	for stage in $(STAGES); do \
	  rm -rf $(BUILD)/$$stage && \
	  $(BIN)/python -B tools/stack.py merge --stage $$stage --out $(BUILD)/netguard-stack-$$stage.json && \
	  NETGUARD_STAGE=$$stage $(BIN)/chalice package --stage $$stage \
	    --merge-template $(BUILD)/netguard-stack-$$stage.json $(BUILD)/$$stage || exit 1; \
	done
	$(BIN)/cfn-lint $(foreach stage,$(STAGES),$(BUILD)/$(stage)/sam.json) deploy/member-account.yaml deploy/tag-guard-scp.yaml

# Regenerate the parts of deploy/*.yaml that mirror policies/, the central policy and the event patterns.
templates: $(STAMP)
	$(BIN)/python -B tools/stack.py write

clean:
	rm -rf $(BUILD) .pytest_cache .chalice/deployments *.egg-info netguard-ledger.jsonl
	find . \( -path ./$(VENV) -o -path ./$(BENCH_VENV) -o -path ./$(PROWLER_VENV) \) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(BENCH_VENV) $(PROWLER_VENV)
