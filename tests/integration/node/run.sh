#!/usr/bin/env bash
# CTest entry for the openai npm client tests: installs openai@6 (package-lock.json) into
# tests/integration/node/node_modules when missing, then runs openai_test.mjs against the server
# command given as arguments (or AURORA_SERVER_CMD).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are required (scripts/install-deps.sh installs them)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if (( major < 20 )); then
  echo "Node >= 20 is required, found $(node --version)" >&2
  exit 1
fi
if [[ ! -f node_modules/openai/package.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test-reporter=spec openai_test.mjs "$@"
