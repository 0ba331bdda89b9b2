#!/usr/bin/env bash
# `make test`: lint, then every test, unit and integration, against the local stack
# (the emulator and devstack, started here unless already running, stopped again after).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
scripts="$ROOT/infra/scripts"

"$scripts/venv.sh"
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
# The suite makes far more anonymous requests (sign-ups, public reads) than the anonymous tier's
# 100 a minute, so its devstack lifts the tier limits; tests/tests/rate_limits.rs checks the
# template's real limits on a gateway of its own.
lifted=""
for tier in Anonymous Authenticated Seller; do
  lifted+=" --parameter ${tier}BurstLimit=1000000 --parameter ${tier}RateLimit=1000000"
done
DEVSTACK_ARGS="$lifted" "$scripts/devstack.sh" start

echo "==> test: unit and integration"
log="$STATE_DIR/test-output.log"
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary, the last often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
