#!/usr/bin/env bash
# venv.sh [dev|localstack|deploy]: creates the virtualenv of one set of pinned Python tools, or
# refreshes it when its requirements file changed.
#   dev         .venv              infra/requirements-dev.txt         MiniStack, cfn-lint, boto3
#   localstack  .venv-localstack   infra/requirements-localstack.txt  LocalStack (Python 3.13)
#   deploy      .venv-deploy       infra/requirements-deploy.txt      SAM CLI, cargo lambda
#   schemathesis .venv-schemathesis infra/requirements-schemathesis.txt Schemathesis
source "$(dirname "$0")/common.sh"
which=${1:-dev}
case "$which" in
  dev) venv="$ROOT/.venv"; python=python3 ;;
  localstack) venv="$ROOT/.venv-localstack"; python="" ;;
  deploy) venv="$ROOT/.venv-deploy"; python=python3 ;;
  schemathesis) venv="$ROOT/.venv-schemathesis"; python=python3 ;;
  *) echo "usage: $0 dev|localstack|deploy|schemathesis" >&2; exit 2 ;;
esac
req="$ROOT/infra/requirements-$which.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

# LocalStack 2026.3 imports warnings.deprecated, new in Python 3.13.
find_python313() {
  local candidate
  for candidate in "${PYTHON313:-}" python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}
if [[ -z "$python" ]]; then
  python=$(find_python313) || {
    echo "EMULATOR=localstack needs Python 3.13 (LocalStack 2026.3 imports warnings.deprecated, new in 3.13)." >&2
    echo "Install it (pyenv install 3.13, or your distribution's python3.13 with venv) or point PYTHON313 at one." >&2
    exit 1
  }
fi
echo "==> installing $(basename "$req") into $(basename "$venv") (once; later runs reuse it)"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
