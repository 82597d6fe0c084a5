# License Admin: build, test, run and deploy.
#
#   make build      compile every Lambda for this machine into bin/ (quick check)
#   make test       every test; starts and stops DynamoDB Local and the rest itself
#   make test-browser  the activation page in headless Chromium (part of make test)
#   make tools      what make test needs: the npm dev tools (make run needs only
#                   these), and Chromium (Debian's package, installed when missing as root)
#   make py-tools   the Python tools (SAM CLI, cfn-lint, schemathesis) in .venv,
#                   locked with hashes; validate, sam-build, deploy and fuzz-api
#                   install them themselves
#   make run        the whole system locally (docs/local.md); PERSIST=1 keeps its data in .local/
#   make lint       gofmt, go vet, staticcheck
#   make validate   sam validate --lint and cfn-lint on template.yaml
#   make sam-build  sam build (uses the build-<LogicalId> targets below)
#   make sam-local  sam build, the local services, the sample world and sam local start-api (docs/local.md)
#   make test-sam-local  the sam local suite in Docker (installs and starts what it needs; CI runs it)
#   make deploy     sam build, then sam deploy --config-env $(ENV)
#   make fuzz-api   schemathesis against a fresh local stack from openapi.yaml (MAX_EXAMPLES=100)
#   make api-fuzz-quick  the short bounded run CI does (5 examples per operation, no stateful phase)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

ENV ?= dev

VENV := .venv
SAM := $(VENV)/bin/sam
CFN_LINT := $(VENV)/bin/cfn-lint
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := infra/node_modules/.installed

export SAM_CLI_TELEMETRY := 0

# LogicalId:directory of every function in template.yaml. sam build calls
# build-<LogicalId> (BuildMethod: makefile, CodeUri: .) with ARTIFACTS_DIR set.
FUNCTIONS := \
	GetLicensePoolFunction:get-license-pool \
	AssignLicenseFunction:assign-license \
	ModifyLicenseFunction:modify-license \
	RemoveLicenseFunction:remove-license \
	TransferLicenseFunction:transfer-license \
	DeletePoolLicensesFunction:delete-pool-licenses \
	BulkLicensesFunction:bulk-licenses \
	CreateUserFunction:create-user \
	GetUserFunction:get-user \
	ListUsersFunction:list-users \
	UpdateUserFunction:update-user \
	DeleteUserFunction:delete-user \
	CreateDomainFunction:create-domain \
	VerifyDomainFunction:verify-domain \
	ListDomainsFunction:list-domains \
	DeleteDomainFunction:delete-domain \
	ApproveDomainFunction:approve-domain \
	SendActivationEmailFunction:send-activation-email \
	SendActivationEmailsFunction:send-activation-emails \
	GetActivationEmailsFunction:get-activation-emails \
	SendRemindersFunction:send-reminders \
	ActivationPageFunction:activation-page \
	ActivateFunction:activate \
	SetAlertThresholdFunction:set-alert-threshold \
	ProcessTableStreamFunction:process-table-stream \
	SweepOutboxFunction:sweep-outbox \
	CreateAccountFunction:create-account \
	AddLicensesFunction:add-licenses \
	IngestUsageFunction:ingest-usage \
	RecordUsageFunction:record-usage \
	ListUserLogsFunction:list-user-logs \
	ListMyLogsFunction:list-my-logs \
	ExportUserLogsFunction:export-user-logs \
	ExportMyLogsFunction:export-my-logs \
	GetExportFunction:get-export \
	ExportLogsFunction:export-logs \
	GetStatsFunction:get-stats \
	GetUserStatsFunction:get-user-stats \
	GetImportTemplateFunction:get-import-template \
	CreateImportFunction:create-import \
	GetImportFunction:get-import \
	ListImportsFunction:list-imports \
	ImportUsersFunction:import-users

LAMBDA_TARGETS := $(foreach f,$(FUNCTIONS),build-$(firstword $(subst :, ,$(f))))

.PHONY: build $(LAMBDA_TARGETS) tools py-tools chromium test test-browser run lint validate sam-build deploy
.PHONY: fuzz-api api-fuzz-quick sam-local test-sam-local

build:
	go build -o bin/ ./functions/...

# lambda_target(LogicalId, directory): the Lambda's bootstrap for provided.al2023 on arm64.
define lambda_target
build-$(1):
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags "-s -w -buildid=" -o $$(ARTIFACTS_DIR)/bootstrap ./functions/$(2)
endef
$(foreach f,$(FUNCTIONS),$(eval $(call lambda_target,$(word 1,$(subst :, ,$(f))),$(word 2,$(subst :, ,$(f))))))

# make test and make run need Node's packages and, for the browser test,
# Chromium; the Python tools are only for SAM and the API fuzzing.
tools: $(NODE_STAMP) chromium

py-tools: $(VENV_STAMP)

# Every Python package, transitive ones included, is pinned with its hashes
# (requirements-dev.txt, generated from requirements-dev.in); pip itself
# first (requirements-pip.txt), since the venv's own is too old to check
# hashes of packages required with extras.
$(VENV_STAMP): requirements-dev.txt requirements-pip.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-pip.txt
	$(VENV)/bin/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

# The browser test drives Chromium at CHROMIUM_PATH, or Debian's
# /usr/bin/chromium, which root gets installed here when it is missing.
CHROMIUM := $(or $(CHROMIUM_PATH),/usr/bin/chromium)

chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Chromium missing at $(CHROMIUM): installing Debian's chromium package for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		printf '%s\n' "make test needs Chromium for the activation page's browser test, and $(CHROMIUM) is missing." \
			"Install it (Debian/Ubuntu: sudo apt-get install -y chromium; make tools does it when run as root)," \
			"or set CHROMIUM_PATH to a Chromium or Chrome binary." >&2; \
		exit 1; \
	fi

$(NODE_STAMP): infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund
	touch $@

test: tools
	go test -timeout 20m ./...
	$(MAKE) test-browser

# The activation page in headless Chromium (playwright-core) against the
# local stack; needs /usr/bin/chromium or CHROMIUM_PATH (make tools).
test-browser: $(NODE_STAMP) chromium
	node --test infra/browser/activation.test.mjs

# PERSIST=1 keeps DynamoDB Local's tables and the S3 store's objects under
# .local/ across restarts; by default they live in memory and go with run.
PERSIST ?=
run: $(NODE_STAMP)
	PERSIST=$(PERSIST) go run ./infra/local run

# The performance harness (docs/performance.md): first the Go benchmarks
# (the CPU and allocations the project adds to DynamoDB's time per request),
# then the figures against the DynamoDB floor, printed and written to
# bench/results.json. BENCH_QUICK=1 is the short check CI runs (numbers not
# judged); BENCH_LARGE=1 adds the 1,000,000-row import and reminds 100,000
# pending users instead of 3,000.
GO_BENCHTIME = $(if $(filter 1,$(BENCH_QUICK)),200x,1000x)
.PHONY: bench
bench: $(NODE_STAMP)
	go test -run '^$$' -bench . -benchmem -benchtime $(GO_BENCHTIME) -count $(if $(filter 1,$(BENCH_QUICK)),1,3) ./infra/bench
	go run ./infra/local bench

# Go sources, skipping what the go tool skips (., _ and testdata directories)
# and node_modules.
GO_FILES = $(shell find . -mindepth 1 -type d \( -name '.*' -o -name '_*' -o -name testdata -o -name node_modules \) -prune -o -type f -name '*.go' -print)

lint:
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then printf 'gofmt -l (run gofmt -w):\n%s\n' "$$unformatted"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...

validate: $(VENV_STAMP)
	$(SAM) validate --lint
	$(CFN_LINT) template.yaml

sam-build: $(VENV_STAMP)
	$(SAM) build

# The functions as AWS runs them, in Docker (docs/local.md, "With Docker:
# sam local"). SAM_LOCAL_OFFLINE=1 is for machines that cannot pull the
# official base image: infra/samlocal/docker-setup.sh installs Docker and
# QEMU, starts dockerd and builds a local stand-in of the image, which is
# then passed with --invoke-image and --skip-pull-image.
SAM_LOCAL_PORT ?= 3000
SAM_LOCAL_SETUP = $(if $(filter 1,$(SAM_LOCAL_OFFLINE)),image=$$(infra/samlocal/docker-setup.sh | tail -1),image=)

sam-local: $(VENV_STAMP) $(NODE_STAMP)
	$(SAM_LOCAL_SETUP); \
	$(SAM) build; \
	go run ./infra/local sam-local --port $(SAM_LOCAL_PORT) $${image:+--invoke-image "$$image"}

# The sam local suite, always offline (CI cannot pull images): it prints one
# line per check, then "N passed, N failed in T".
test-sam-local: $(VENV_STAMP) $(NODE_STAMP)
	image=$$(infra/samlocal/docker-setup.sh | tail -1); \
	start=$$(date +%s); $(SAM) build; echo "sam build: $$(( $$(date +%s) - start )) s"; \
	go run ./infra/local sam-test --invoke-image "$$image"

deploy: $(VENV_STAMP)
	@case "$(ENV)" in dev|prod) ;; *) echo "ENV must be dev or prod (an environment of samconfig.toml), not '$(ENV)'" >&2; exit 1 ;; esac
	@if awk '/^\[$(ENV)\.deploy\.parameters\]/{f=1;next} /^\[/{f=0} f' samconfig.toml | grep -q 'example\.'; then \
		echo "samconfig.toml [$(ENV).deploy.parameters] still has example values (example.com): set your own (docs/operations.md, Deploy checklist)" >&2; exit 1; fi
	$(SAM) build
	$(SAM) deploy --config-env $(ENV)

# Property-based API testing (infra/fuzz-api.sh): no 5xx, no answer that
# openapi.yaml does not describe.
fuzz-api: $(NODE_STAMP) $(VENV_STAMP)
	MAX_EXAMPLES=$${MAX_EXAMPLES:-100} infra/fuzz-api.sh

api-fuzz-quick: $(NODE_STAMP) $(VENV_STAMP)
	MAX_EXAMPLES=5 PHASES=examples,coverage,fuzzing infra/fuzz-api.sh
