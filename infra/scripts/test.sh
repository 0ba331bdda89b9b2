#!/usr/bin/env bash
# `make test`: lint, then every test, unit and integration, against the local stack (the emulator
# chosen by EMULATOR and devstack, started here unless already running, stopped again after).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
scripts="$ROOT/infra/scripts"

"$scripts/venv.sh" dev
echo "==> lint: cargo fmt --check, cfn-lint, clippy"
cargo fmt --all -- --check
"$VENV/bin/cfn-lint" infra/template.yaml
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> build: every function, devstack and the tests"
cargo build --workspace --bins --quiet
cargo test --workspace --no-run --quiet

cleanup() { "$scripts/devstack.sh" stop; "$scripts/emulator.sh" stop; }
trap cleanup EXIT
"$scripts/emulator.sh" start
# The suite makes far more requests from 127.0.0.1 (sign-ups, public reads) than an anonymous
# address's 100 a minute, so its devstack lifts the per-caller allowances and the tier ceilings
# (to integration_tests::SUITE_ALLOWANCE); tests/tests/rate_limits.rs checks the real limits on
# gateways of its own.
lifted=""
for tier in Anonymous Authenticated Seller; do
  lifted+=" --parameter ${tier}BurstLimit=1000000 --parameter ${tier}RateLimit=1000000"
  lifted+=" --parameter ${tier}RequestsPerMinute=1000000"
done
# A deletion's saga completes after its closing sweep, AuthorizerCacheSeconds plus
# DeletionSweepMarginSeconds after the deletion (5 minutes and 60 s by default): the suite's
# stack closes that window in 3 s, so that the deletion tests see their sagas complete.
# tests/tests/trust.rs and deletion_window.rs check the cache's bound on gateways of their own.
window=" --parameter AuthorizerCacheSeconds=2 --parameter DeletionSweepMarginSeconds=1"
DEVSTACK_ARGS="$lifted$window" "$scripts/devstack.sh" start
load_aws_env

# Which emulator answers each service, as devstack found it: a run that says localstack but
# sends SQS or SNS somewhere else does not count.
expected() {
  case "$EMULATOR:$1" in
    localstack:sqs | localstack:sns) echo LocalStack ;;
    localstack:dynamodb) echo "DynamoDB Local" ;;
    *) echo MiniStack ;;
  esac
}
echo "==> emulators (EMULATOR=$EMULATOR)"
answered=$("$VENV/bin/python" -c 'import json, sys
for service, emulator in sorted(json.load(open(sys.argv[1]))["emulators"].items()):
    print(f"{service}\t{emulator}")' "$STATE_DIR/stack.json")
while IFS=$'\t' read -r service emulator; do
  echo "    $service: $emulator"
  if [[ "$emulator" != "$(expected "$service")"* ]]; then
    echo "$service is answered by $emulator, but EMULATOR=$EMULATOR wants $(expected "$service") there" >&2
    exit 1
  fi
done <<<"$answered"
[[ $(wc -l <<<"$answered") -eq 4 ]] || { echo "expected 4 services in .devstack/stack.json, got: $answered" >&2; exit 1; }

# AWS's EMF schema, which tests/tests/observability.rs holds the functions' metrics to.
"$scripts/emf-schema.sh"
# Chromium and playwright-core, which tests/tests/console.rs drives the console with.
"$scripts/browser.sh"

echo "==> test: unit and integration (EMULATOR=$EMULATOR)"
log="$STATE_DIR/test-output-$EMULATOR.log"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary, the last often "0 passed").
awk -v emulator="$EMULATOR" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests (EMULATOR=%s): %d passed, %d failed\n", emulator, p, f }' "$log"

# The API against its own description, through the same stack (README, "Tests").
echo "==> schemathesis (EMULATOR=$EMULATOR)"
"$scripts/schemathesis.sh" || status=1
exit "$status"
