#!/usr/bin/env bash
# Schemathesis against the running stack (part of `make test`): the API's own description at
# /api/v1/openapi.json, the checks of infra/schemathesis/schemathesis.toml, as a buyer, a seller
# and an admin. Any failure fails the run; the JSON reports stay in .devstack/schemathesis/.
source "$(dirname "$0")/common.sh"
"$(dirname "$0")/venv.sh" schemathesis
load_aws_env
api=$(cat "$STATE_DIR/ready")
reports="$STATE_DIR/schemathesis"
mkdir -p "$reports"
users=$("$VENV/bin/python" "$ROOT/infra/schemathesis/users.py")
eval "$users"
export LOGOUT_TOKEN
status=0
for caller in buyer seller admin; do
  token_var="${caller^^}_TOKEN"
  echo "==> schemathesis as the $caller"
  # Bounded: 25 examples an operation take about 20 s; the timeout only stops a hang.
  if ! API_TOKEN="${!token_var}" timeout 300 "$ROOT/.venv-schemathesis/bin/st" \
      --config-file "$ROOT/infra/schemathesis/schemathesis.toml" run "$api/api/v1/openapi.json" \
      --url "$api" --report json --report-json-path "$reports/$caller.json" --no-color \
      >"$reports/$caller.log" 2>&1; then
    status=1
    echo "schemathesis as the $caller failed; the report: .devstack/schemathesis/$caller.log" >&2
    sed -n '/= FAILURES =/,/= SUMMARY =/p' "$reports/$caller.log" | head -80 >&2
  fi
  grep -E "^  [0-9]+ generated|passed|failure" "$reports/$caller.log" | tail -2
done
exit "$status"
