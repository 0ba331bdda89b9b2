# Shared by the scripts in this folder: paths, the emulator's layout, and small helpers. Sourced.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="$ROOT/.devstack"
VENV="$ROOT/.venv"
API_ADDR="${DEVSTACK_API_ADDR:-127.0.0.1:3000}"
# Which emulator answers the AWS APIs (README, "The local stack"):
#   ministack   MiniStack for everything (the default)
#   localstack  LocalStack for SQS, SNS and CloudFormation, DynamoDB Local for DynamoDB, MiniStack
#               for Cognito (LocalStack's free edition has none)
EMULATOR="${EMULATOR:-ministack}"
EMULATOR_HOST=127.0.0.1
EMULATOR_PORT="${EMULATOR_PORT:-4566}"
# EMULATOR=localstack only: the side emulators.
COGNITO_PORT="${COGNITO_PORT:-4567}"
DYNAMODB_PORT="${DYNAMODB_PORT:-4568}"
# One account id end to end: devstack writes it into every ARN it builds, MiniStack is told it,
# and LocalStack takes the account from the access key.
ACCOUNT_ID=123456789012
REGION="${AWS_REGION:-us-east-1}"
# What the emulator scripts write: the AWS endpoints and credentials of the running emulator, in
# the form of the variables the AWS SDKs read (sourced by devstack.sh, test.sh, bench/run.sh).
AWS_ENV="$STATE_DIR/aws.env"
mkdir -p "$STATE_DIR"

case "$EMULATOR" in
  ministack | localstack) ;;
  *) echo "EMULATOR=$EMULATOR: expected ministack (the default) or localstack" >&2; exit 2 ;;
esac

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

# load_aws_env: exports what the running emulator's scripts wrote (endpoints, region, credentials),
# or fails with what to run first.
load_aws_env() {
  if [[ ! -f "$AWS_ENV" ]]; then
    echo "no emulator endpoints in $AWS_ENV: start the emulator first (make emulator, or make dev)" >&2
    return 1
  fi
  set -a
  # shellcheck disable=SC1090
  source "$AWS_ENV"
  set +a
}
