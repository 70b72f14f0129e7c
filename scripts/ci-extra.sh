#!/usr/bin/env bash
# CI stages after the main build and tests (called by `scripts/dev.sh test`):
#   1. a short libFuzzer run of every parser target (HTTP framing, request JSON, tokenizer.json);
# Set AURORA_CI_FUZZ_SECONDS=0 to skip the fuzz stage locally.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${AURORA_CI_FUZZ_SECONDS:-20}
if (( fuzz_seconds > 0 )); then
  FUZZ_SECONDS=$fuzz_seconds bash scripts/fuzz-smoke.sh
fi
