#!/usr/bin/env bash
# The local AWS emulator (moto in server mode) on 127.0.0.1:4566.
#   start: reuse one already listening there, or start ours in the background
#   stop:  stop it, if this script started it
#   reset: wipe its state (every table, queue and topic)
source "$(dirname "$0")/common.sh"
pidfile="$STATE_DIR/emulator.pid"
log="$STATE_DIR/emulator.log"
case "${1:-start}" in
  start)
    if port_open "$EMULATOR_HOST" "$EMULATOR_PORT"; then
      echo "==> AWS emulator: reusing the one listening on $EMULATOR_HOST:$EMULATOR_PORT"
      exit 0
    fi
    "$(dirname "$0")/venv.sh"
    echo "==> AWS emulator: starting moto on $EMULATOR_HOST:$EMULATOR_PORT (log: .devstack/emulator.log)"
    # moto with DynamoDB requests serialised, isolated as on AWS (see emulator.py).
    nohup "$VENV/bin/python" "$ROOT/infra/scripts/emulator.py" "$EMULATOR_HOST" "$EMULATOR_PORT" >"$log" 2>&1 &
    echo $! > "$pidfile"
    if ! wait_for 30 "the AWS emulator" port_open "$EMULATOR_HOST" "$EMULATOR_PORT"; then
      tail -20 "$log" >&2; exit 1
    fi
    ;;
  stop)
    if [[ -f "$pidfile" ]]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
      echo "==> AWS emulator: stopped"
    fi
    ;;
  reset)
    curl -fsS -X POST "http://$EMULATOR_HOST:$EMULATOR_PORT/moto-api/reset" >/dev/null
    echo "==> AWS emulator: state wiped; run 'make dev' or 'devstack provision' to recreate the stack"
    ;;
  *) echo "usage: $0 start|stop|reset" >&2; exit 2 ;;
esac
