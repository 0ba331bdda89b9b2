#!/usr/bin/env bash
# What tests/tests/console.rs drives the console with: Debian's Chromium (package `chromium`, at
# /usr/bin/chromium) and playwright-core from npm (tests/browser, pinned in its package-lock.json).
# Installs what is missing; a second run does nothing.
source "$(dirname "$0")/common.sh"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  echo "==> browser: installing Debian's chromium"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
browser_dir="$ROOT/tests/browser"
if [[ ! -d "$browser_dir/node_modules/playwright-core" ]]; then
  command -v npm >/dev/null || { echo "npm is needed for the console's browser test (Node.js 18 or later)" >&2; exit 1; }
  echo "==> browser: installing playwright-core (npm ci)"
  (cd "$browser_dir" && npm ci --no-audit --no-fund --silent)
fi
echo "==> browser: $("$chromium" --version 2>/dev/null | head -1), playwright-core $(node -p 'require(process.argv[1]).version' "$browser_dir/node_modules/playwright-core/package.json")"
