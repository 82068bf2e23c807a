# Custom Labels Guard — every target installs what it needs.
#   make demo    run the whole system locally (moto server on 127.0.0.1), no AWS account
#   make test    lint, type-check, template checks and all tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON313 := $(shell scripts/find-python313.sh)
PYTHON313_DIR := $(dir $(PYTHON313))
VENV := .venv
TOOLS := .venv-tools
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check
# sam build runs "python3.13" from PATH for the python3.13 runtime: put ours first.
SAM_ENV := PATH="$(abspath $(TOOLS))/bin:$(PYTHON313_DIR):$$PATH" SAM_CLI_TELEMETRY=0
SAM := $(SAM_ENV) $(TOOLS)/bin/sam
TEMPLATE := template.yaml

.PHONY: help venv tools lint format typecheck validate browser test test-fast build demo audit exceptions-check replay bench deploy deploy-prod package publish clean mutation

help:
	@echo "make demo      run the whole system on a local moto server and print what happened"
	@echo "make test      ruff, mypy, sam validate --lint, checkov and all tests"
	@echo "make audit     run the audit on the local system and write its report to audit-report/"
	@echo "make bench     performance figures (ratios measured side by side)"
	@echo "make mutation  mutation testing of rules/ (mutmut; slow: MODULE=policy|principals|arns|encryption|exceptions|snsbatches for one module)"
	@echo "make replay EVENT=path.json   route your own event through the local system"
	@echo "make exceptions-check FILE=f.json [FINDINGS=r.json]   check an accepted-exceptions document"
	@echo "make build     sam build (no container)"
	@echo "make deploy    sam deploy (guided the first time; CONFIG_ENV=example deploys a named environment)"
	@echo "make package S3_BUCKET=b   package for the Serverless Application Repository (packaged.yaml)"
	@echo "make publish S3_BUCKET=b   package, then publish (or update) the application in the SAR"

$(VENV)/.installed: requirements-dev.txt constraints-dev.txt layers/shared/requirements.txt pyproject.toml
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is required (see scripts/find-python313.sh)"; exit 1; }
	rm -rf $(VENV)
	$(PYTHON313) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt -c constraints-dev.txt
	# the operator's command `clguard` (console script of pyproject.toml), editable
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(TOOLS)/.installed: requirements-tools.txt constraints-tools.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is required (see scripts/find-python313.sh)"; exit 1; }
	rm -rf $(TOOLS)
	$(PYTHON313) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_FLAGS) -r requirements-tools.txt -c constraints-tools.txt
	touch $@

venv: $(VENV)/.installed
tools: $(TOOLS)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: venv
	$(VENV)/bin/mypy layers/shared/clguard functions localaws tests $(wildcard bench)

validate: tools
	$(SAM) validate --lint --template $(TEMPLATE)
	$(SAM) validate --lint --template member.yaml
	BC_SKIP_MAPPING=TRUE $(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file $(TEMPLATE) --file member.yaml

# The audit report's test renders it in a real headless Chromium (Debian's package) and runs
# axe-core (npm, pinned by package-lock.json) inside it.
browser: node_modules/.package-lock.json
	scripts/ensure-chromium.sh

node_modules/.package-lock.json: package.json package-lock.json
	scripts/ensure-axe.sh

# --dist loadfile: a module's tests run together on one worker, so a module-scoped local world (tests/e2e)
# never lives beside another module's moto and caches in the same process.
test: lint typecheck validate browser
	PATH="$(abspath $(TOOLS))/bin:$(PYTHON313_DIR):$$PATH" SAM_CLI_TELEMETRY=0 $(PY) -m pytest -n 2 --dist loadfile

test-fast: venv
	$(PY) -m pytest -m "not sam" -x -q

build: tools
	$(SAM) build --template $(TEMPLATE)

demo: venv
	$(PY) -m localaws.demo

audit: venv
	$(PY) -m localaws.audit

exceptions-check: venv
	@test -n "$(FILE)" || { echo "usage: make exceptions-check FILE=exceptions.json [FINDINGS=findings.json]"; exit 1; }
	$(PY) -m localaws.exceptions_check "$(FILE)" $(if $(FINDINGS),--findings "$(FINDINGS)")

replay: venv
	@test -n "$(EVENT)" || { echo "usage: make replay EVENT=path/to/event.json"; exit 2; }
	$(PY) -m localaws.replay "$(EVENT)"

bench: venv
	$(PY) -m bench

# Guided until samconfig.toml has your [default.deploy.parameters] (the guided run saves them);
# CONFIG_ENV=<name> deploys a named environment of samconfig.toml instead.
CONFIG_ENV ?=
DEPLOY_FLAGS := $(if $(CONFIG_ENV),--config-env $(CONFIG_ENV),$(if $(shell grep -s '^\[default\.deploy\.parameters\]' samconfig.toml),,--guided))

deploy: build
	$(SAM) deploy $(DEPLOY_FLAGS)

deploy-prod: build
	$(SAM) deploy --config-env prod

# The Serverless Application Repository reads the code, README and LICENSE from S3_BUCKET: its
# bucket policy must allow serverlessrepo.amazonaws.com s3:GetObject (see the README).
PACKAGED := packaged.yaml

package: build
	@test -n "$(S3_BUCKET)" || { echo "usage: make package S3_BUCKET=<bucket readable by serverlessrepo.amazonaws.com>"; exit 2; }
	$(SAM) package --template-file .aws-sam/build/template.yaml --s3-bucket "$(S3_BUCKET)" --output-template-file $(PACKAGED)

publish: package
	$(SAM) publish --template $(PACKAGED)

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Mutation testing of the key-policy rules (not part of make test: it is slow). README: "Mutation score".
mutation: venv
	MODULE=$(MODULE) MUTANTS="$(MUTANTS)" JOBS=$(or $(JOBS),2) scripts/mutation.sh
