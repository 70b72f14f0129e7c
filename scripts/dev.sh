#!/usr/bin/env bash
# The README's two commands:
#   scripts/dev.sh serve [aurora serve flags]   installs deps, builds, runs the server (embedded model)
#   scripts/dev.sh test                          installs deps, builds, runs every test
# The build uses the `release` preset: the CUDA backend is compiled when nvcc is found (GPU or not);
# GPU tests skip without a GPU, and fail when AURORA_REQUIRE_GPU=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cmd=${1:-}
shift || true

jobs=${AURORA_JOBS:-$(nproc)}

build() {
  bash scripts/install-deps.sh
  cmake --preset release >/dev/null
  cmake --build --preset release --parallel "$jobs" "$@"
}

case "$cmd" in
  serve)
    build --target aurora
    exec "$root/build/release/cli/aurora" serve "$@"
    ;;
  test)
    start=$(date +%s)
    build
    ctest --preset release --parallel "$jobs" "$@"
    if [[ -x scripts/ci-extra.sh ]]; then bash scripts/ci-extra.sh; fi
    echo "dev.sh test: all green in $(( $(date +%s) - start )) s"
    ;;
  *)
    echo "usage: scripts/dev.sh serve [aurora serve flags] | test [ctest flags]" >&2
    exit 2
    ;;
esac
