#!/usr/bin/env bash
# `make bench`: release build, the local stack, then the benchmark table.
source "$(dirname "$0")/../infra/scripts/common.sh"
cd "$ROOT"
scripts="$ROOT/infra/scripts"
echo "==> build: release binaries (the first build takes about 10 minutes)"
cargo build --release --workspace --bins --quiet
"$scripts/venv.sh"
cleanup() { DEVSTACK_API_ADDR="$BENCH_API" "$scripts/devstack.sh" stop; "$scripts/emulator.sh" stop; }
trap cleanup EXIT
"$scripts/emulator.sh" start
# A devstack of its own, on release binaries, beside any `make dev` one.
export BENCH_API=127.0.0.1:3100
if [[ -f "$STATE_DIR/ready" ]]; then mv "$STATE_DIR/ready" "$STATE_DIR/ready.dev"; fi
DEVSTACK_API_ADDR=$BENCH_API DEVSTACK_BIN_DIR="$ROOT/target/release" "$scripts/devstack.sh" start
if [[ -f "$STATE_DIR/ready.dev" ]]; then mv "$STATE_DIR/ready.dev" "$STATE_DIR/ready"; fi
# The Python baseline runs on the venv's interpreter, which has boto3.
PATH="$VENV/bin:$PATH" target/release/bench --api "http://$BENCH_API" "$@"
