# Shared by the scripts in this folder: paths and small helpers. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="$ROOT/.devstack"
VENV="$ROOT/.venv"
EMULATOR_HOST=127.0.0.1
EMULATOR_PORT="${EMULATOR_PORT:-4566}"
API_ADDR="${DEVSTACK_API_ADDR:-127.0.0.1:3000}"
mkdir -p "$STATE_DIR"

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then echo "timed out after ${seconds}s waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}
