#!/usr/bin/env bash
# `make deploy-local`: the deploy rehearsal (README, "Deploy rehearsal").
#   1. packages every function as Lambda runs it: a zip with `bootstrap`
#        DEPLOY_BUILD=release (default)  cargo lambda build --release --output-format zip
#        DEPLOY_BUILD=debug              the debug binaries of `cargo build`, stripped and zipped
#                                        (CI: no second build of the AWS SDK)
#      Both for this machine's architecture: MiniStack runs `bootstrap` as a local process.
#   2. deploys infra/template.yaml, with the local overlay (infra/deploy-local/overlay.yaml),
#      through a MiniStack of its own (127.0.0.1:$DEPLOY_LOCAL_PORT, default 4580) with `sam deploy`
#      and the SAM transform, as on AWS; every resource must be created
#   3. reads back what was made and compares it with the template (deploy_local.py verify)
#   4. updates products-api alone with `cargo lambda deploy` (a build with a new BUILD_ID), and
#      waits for MiniStack's API Gateway to answer with that build
# The rehearsal's MiniStack keeps running afterwards, to try the deployed API; `make stop` stops it.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
scripts="$ROOT/infra/scripts"
port="${DEPLOY_LOCAL_PORT:-4580}"
build="${DEPLOY_BUILD:-release}"
stack_name="${DEPLOY_STACK_NAME:-marketplace}"
dir="$STATE_DIR/deploy-local"
deploy_venv="$ROOT/.venv-deploy"
python="$deploy_venv/bin/python"
started=$SECONDS

"$scripts/venv.sh" deploy
"$scripts/venv.sh" dev
mkdir -p "$dir"
binaries=$("$python" infra/deploy-local/deploy_local.py binaries)

echo "==> deploy-local: packaging $(wc -w <<<"$binaries") functions ($build build)"
rm -rf "$dir/zips" && mkdir -p "$dir/zips"
if [[ "$build" == release ]]; then
  bin_args=()
  for b in $binaries; do bin_args+=(--bin "$b"); done
  PATH="$deploy_venv/bin:$PATH" cargo lambda build --release --output-format zip --workspace "${bin_args[@]}"
  for b in $binaries; do cp "target/lambda/$b/bootstrap.zip" "$dir/zips/$b.zip"; done
elif [[ "$build" == debug ]]; then
  cargo build --workspace --bins --quiet
  "$python" infra/deploy-local/deploy_local.py zip target/debug "$dir/zips"
else
  echo "DEPLOY_BUILD=$build: expected release or debug" >&2; exit 2
fi

# A MiniStack of its own, empty, so that the stack is created from nothing as on a new account.
"$scripts/emulator.sh" ministack "$port"
curl -fsS -X POST "http://$EMULATOR_HOST:$port/_ministack/reset" >/dev/null
export AWS_ENDPOINT_URL="http://$EMULATOR_HOST:$port" AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"
export AWS_ACCESS_KEY_ID="$ACCOUNT_ID" AWS_SECRET_ACCESS_KEY=test SAM_CLI_TELEMETRY=0
bucket="$stack_name-artifacts-$ACCOUNT_ID"
"$python" infra/deploy-local/deploy_local.py bucket "$bucket"
"$python" infra/deploy-local/deploy_local.py build-template "$dir/template.json" "$dir/zips"

echo "==> deploy-local: sam deploy --stack-name $stack_name into MiniStack at $AWS_ENDPOINT_URL"
# The same command as on AWS; only the endpoint differs. Parameters are the template's defaults.
set +e
"$deploy_venv/bin/sam" deploy --template-file "$dir/template.json" --stack-name "$stack_name" \
  --s3-bucket "$bucket" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --no-confirm-changeset --no-fail-on-empty-changeset --no-progressbar --region "$REGION" \
  2>&1 | tee "$dir/sam-deploy.log" | grep --line-buffered -v "Uploading to"
status=${PIPESTATUS[0]}
set -e
if [[ "$status" != 0 ]]; then
  echo "deploy-local: sam deploy failed ($status); the log is in .devstack/deploy-local/sam-deploy.log" >&2
  exit 1
fi

echo "==> deploy-local: reading the stack back"
"$python" infra/deploy-local/deploy_local.py verify "$stack_name"

echo "==> deploy-local: updating one function with cargo lambda deploy"
build_id="rehearsal-$(date -u +%Y%m%dT%H%M%S)"
function_name=$("$python" infra/deploy-local/deploy_local.py physical-id "$stack_name" ProductsApiFunction)
if [[ "$build" == release ]]; then
  BUILD_ID="$build_id" PATH="$deploy_venv/bin:$PATH" cargo lambda build --release --workspace --bin products-api
  binary=target/lambda/products-api/bootstrap
else
  BUILD_ID="$build_id" cargo build --workspace --bin products-api --quiet
  binary=target/debug/products-api
fi
# --merge-env: keep the environment the stack gave the function; only the code changes.
PATH="$deploy_venv/bin:$PATH" cargo lambda deploy --endpoint-url "$AWS_ENDPOINT_URL" --region "$REGION" \
  --binary-path "$binary" --merge-env "$function_name"
api_url=$("$python" infra/deploy-local/deploy_local.py api-url "$stack_name")
"$python" infra/deploy-local/deploy_local.py wait-for-build "$api_url/api/v1/products" "$build_id"
# The update changed the code alone: the stack still reads back as the template says.
"$python" infra/deploy-local/deploy_local.py verify "$stack_name" --quiet

echo "==> deploy-local: done in $((SECONDS - started)) s. The stack runs in MiniStack at $AWS_ENDPOINT_URL:"
echo "    curl -s $api_url/api/v1/products"
echo "    (make stop stops it)"
