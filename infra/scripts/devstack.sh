#!/usr/bin/env bash
# devstack against the running emulator (its endpoints from .devstack/aws.env).
#   run:   `devstack up` in the foreground (make dev)
#   start: reuse a devstack already serving on $DEVSTACK_API_ADDR (default 127.0.0.1:3000),
#          or start `devstack up` in the background and wait until it serves (tests, benchmarks)
#   stop:  stop it, if this script started it
source "$(dirname "$0")/common.sh"
pidfile="$STATE_DIR/devstack.pid"
log="$STATE_DIR/devstack.log"
bin_dir="${DEVSTACK_BIN_DIR:-$ROOT/target/debug}"
cd "$ROOT"
# The browser origins the local API grants (the template's AllowedOrigins; README, "CORS").
origins="--parameter AllowedOrigins=${ALLOWED_ORIGINS:-http://localhost:5173}"
case "${1:-start}" in
  run)
    load_aws_env
    # shellcheck disable=SC2086
    exec "$bin_dir/devstack" up --listen "$API_ADDR" --bin-dir "$bin_dir" $origins ${DEVSTACK_ARGS:-}
    ;;
  start)
    load_aws_env
    host=${API_ADDR%:*} port=${API_ADDR##*:}
    if [[ -f "$STATE_DIR/ready" ]] && port_open "$host" "$port"; then
      echo "==> devstack: reusing the one serving on $API_ADDR (restart it after rebuilding functions)"
      exit 0
    fi
    rm -f "$STATE_DIR/ready"
    echo "==> devstack: starting on $API_ADDR (log: .devstack/devstack.log)"
    # DEVSTACK_ARGS: extra `devstack up` options, e.g. `--parameter NAME=VALUE`.
    # shellcheck disable=SC2086
    nohup "$bin_dir/devstack" up --listen "$API_ADDR" --bin-dir "$bin_dir" $origins ${DEVSTACK_ARGS:-} >"$log" 2>&1 &
    echo $! > "$pidfile"
    alive() { kill -0 "$(cat "$pidfile")" 2>/dev/null; }
    ready() { [[ -f "$STATE_DIR/ready" ]] || { alive || return 2; false; }; }
    if ! wait_for 120 "devstack" ready; then
      echo "--- devstack log ---" >&2; tail -30 "$log" >&2; exit 1
    fi
    ;;
  stop)
    if [[ -f "$pidfile" ]]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile" "$STATE_DIR/ready"
      echo "==> devstack: stopped"
    fi
    ;;
  *) echo "usage: $0 run|start|stop" >&2; exit 2 ;;
esac
