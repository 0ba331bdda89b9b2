#!/usr/bin/env bash
# stack-env.sh COMMAND...: runs COMMAND with the running emulator's endpoints and credentials
# (.devstack/aws.env) in its environment, as devstack hands them to the functions. For running
# one test against a `make dev` stack:
#   infra/scripts/stack-env.sh cargo test -p integration-tests --test backbone created_product
source "$(dirname "$0")/common.sh"
load_aws_env
exec "$@"
