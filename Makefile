# The two commands a newcomer needs: `make dev` and `make test`. See README.md.
# EMULATOR=ministack (the default) or EMULATOR=localstack picks the local AWS emulator.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SCRIPTS := infra/scripts

.PHONY: help dev test build venv emulator emulator-reset emulator-status stop lint bench provision deploy-local redrive

help:
	@echo "make dev           install what is missing, start the emulator and devstack, serve the API on 127.0.0.1:3000"
	@echo "make test          lint, then every unit and integration test against the local stack"
	@echo "make bench         benchmarks (release build), printed as a table"
	@echo "make deploy-local  deploy rehearsal: package every function and deploy the template through MiniStack's CloudFormation"
	@echo "make stop          stop the background emulator/devstack started by these targets"
	@echo "make redrive QUEUE=<dlq> [TO=<queue>]  move a dead-letter queue's messages back to their queue"
	@echo "EMULATOR=ministack (default) or EMULATOR=localstack picks the emulator for dev, test and bench"

## dev: everything up, in the foreground; Ctrl-C stops devstack (the emulator keeps running).
dev: venv build emulator
	@echo "==> devstack: provisioning infra/template.yaml and starting the API (Ctrl-C to stop)"
	@$(SCRIPTS)/devstack.sh run

test:
	$(SCRIPTS)/test.sh

build:
	cargo build --workspace --bins

venv:
	@$(SCRIPTS)/venv.sh dev

emulator:
	@$(SCRIPTS)/emulator.sh start

emulator-reset:
	@$(SCRIPTS)/emulator.sh reset

emulator-status:
	@$(SCRIPTS)/emulator.sh status

provision: venv build emulator
	@$(SCRIPTS)/stack-env.sh target/debug/devstack provision

## redrive: a DLQ's messages back into the queue whose redrive policy names it (README, "Delivery
## guarantees"). Against the emulator of .devstack/aws.env; on AWS (no endpoint variables) through
## SQS's StartMessageMoveTask.
redrive: build
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=<dlq name or URL> [TO=<queue>]"; exit 2; }
	@$(SCRIPTS)/stack-env.sh target/debug/devstack redrive --queue "$(QUEUE)" $(if $(TO),--to "$(TO)")

stop:
	@$(SCRIPTS)/devstack.sh stop
	@$(SCRIPTS)/emulator.sh stop

lint: venv
	cargo fmt --all -- --check
	.venv/bin/cfn-lint infra/template.yaml
	cargo clippy --workspace --all-targets -- -D warnings

bench: venv
	bench/run.sh

deploy-local:
	$(SCRIPTS)/deploy-local.sh
