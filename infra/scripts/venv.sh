#!/usr/bin/env bash
# Creates .venv with the pinned Python tools (moto, cfn-lint), or refreshes it when
# infra/requirements-dev.txt changed. Needs only the machine's python3.
source "$(dirname "$0")/common.sh"
req="$ROOT/infra/requirements-dev.txt"
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -x "$VENV/bin/moto_server" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "==> installing the local stack's Python tools into .venv (moto, cfn-lint)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
