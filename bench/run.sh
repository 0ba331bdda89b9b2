#!/usr/bin/env bash
# `make bench`: release build, the local stack, then the benchmark table.
source "$(dirname "$0")/../infra/scripts/common.sh"
cd "$ROOT"
scripts="$ROOT/infra/scripts"
echo "==> build: release binaries (the first build takes about 10 minutes)"
cargo build --release --workspace --bins --quiet
"$scripts/venv.sh" dev
"$scripts/emulator.sh" start
load_aws_env
# A devstack of its own on release binaries, beside any `make dev` one, with its own state file.
# Its rate limits are lifted so the measurements measure latency, not the limits (the per-caller
# limits still count every request; the table measures what that costs).
bench_dir="$STATE_DIR/bench"
mkdir -p "$bench_dir"
rm -f "$bench_dir/ready"
lifted=()
for tier in Anonymous Authenticated Seller; do
  lifted+=(--parameter "${tier}BurstLimit=1000000" --parameter "${tier}RateLimit=1000000")
  lifted+=(--parameter "${tier}RequestsPerMinute=1000000")
done
# One user holds all the WebSocket connections of the connections benchmark.
lifted+=(--parameter WebSocketConnectionsPerUser=100000)
target/release/devstack up --listen 127.0.0.1:3100 --ws-listen 127.0.0.1:3101 --bin-dir target/release --state "$bench_dir/stack.json" "${lifted[@]}" \
  >"$bench_dir/devstack.log" 2>&1 &
devstack_pid=$!
cleanup() { kill "$devstack_pid" 2>/dev/null || true; wait "$devstack_pid" 2>/dev/null || true; "$scripts/emulator.sh" stop; }
trap cleanup EXIT
ready() { [[ -f "$bench_dir/ready" ]] || { kill -0 "$devstack_pid" 2>/dev/null || return 2; false; }; }
wait_for 120 "the benchmark devstack" ready || { tail -30 "$bench_dir/devstack.log" >&2; exit 1; }
# The Python baseline runs on the venv's interpreter, which has boto3. The table says which
# emulator it ran on (EMULATOR, and what answered each service).
PATH="$VENV/bin:$PATH" target/release/bench --api "http://127.0.0.1:3100" --state "$bench_dir/stack.json" "$@"
