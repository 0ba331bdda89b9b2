#!/usr/bin/env bash
# The JSON schema of CloudWatch's Embedded Metric Format, as AWS ships it: in Powertools for AWS
# Lambda (Python) 1.10.0, `aws_lambda_powertools/metrics/schema.json`. Written once to
# .devstack/emf-schema.json, where tests/tests/observability.rs validates the functions' EMF
# lines against it.
source "$(dirname "$0")/common.sh"
out="$STATE_DIR/emf-schema.json"
[[ -s "$out" ]] && exit 0
"$ROOT/infra/scripts/venv.sh" dev
dir="$STATE_DIR/emf-schema"
mkdir -p "$dir"
"$VENV/bin/pip" download --quiet --no-deps "aws-lambda-powertools==1.10.0" -d "$dir"
"$VENV/bin/python" - "$dir"/aws_lambda_powertools-1.10.0-py3-none-any.whl "$out" <<'PY'
import sys, zipfile
schema = zipfile.ZipFile(sys.argv[1]).read("aws_lambda_powertools/metrics/schema.json")
open(sys.argv[2], "wb").write(schema)
PY
echo "==> EMF schema: $out (from aws-lambda-powertools 1.10.0)"
