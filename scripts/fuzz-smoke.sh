#!/usr/bin/env bash
# Short libFuzzer runs of the request parsers, for CI:
#   scripts/fuzz-smoke.sh            # 60 s per target
#   FUZZ_SECONDS=10 scripts/fuzz-smoke.sh
# Builds the `fuzz` preset (clang, AURORA_FUZZ=ON, ASan + UBSan), then runs each target from its
# committed seed corpus with its dictionary. Any crash, sanitizer report, leak or timeout fails the
# run; the reproducer is left in build/fuzz/artifacts/ (keep it as a regression seed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
jobs=${AURORA_JOBS:-$(nproc)}

if ! command -v clang++ >/dev/null; then
  echo "fuzz-smoke: clang++ is required (apt-get install clang)" >&2
  exit 1
fi
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$jobs" --target fuzz_http_request fuzz_request_json fuzz_tokenizer_json

out=build/fuzz/artifacts
mkdir -p "$out"
run() {  # target name, its folder (fuzz/ holds corpus/ and the dictionary), dictionary, max_len[, seed files]
  local name=$1 dir=$2 dict=$3 max_len=$4
  shift 4
  local work=build/fuzz/corpus-$name log=build/fuzz/$name.log
  mkdir -p "$work"
  if (( $# )); then
    local i=0
    for seed in "$@"; do cp "$seed" "$work/seed-$((i++))"; done
  else
    cp -n "$dir"/fuzz/corpus/* "$work"/
  fi
  echo "fuzz-smoke: $name for ${seconds}s"
  local status=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "build/fuzz/$dir/$name" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    ${dict:+-dict="$dir/fuzz/$dict"} -artifact_prefix="$out/$name-" -print_final_stats=1 "$work" >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|ERROR|SUMMARY|Test unit written" "$log" || true
  if (( status != 0 )) || ! grep -q "^stat::number_of_executed_units" "$log"; then
    tail -40 "$log" >&2
    echo "fuzz-smoke: $name FAILED (exit $status); log $log, reproducer in $out/" >&2
    return 1
  fi
}
run fuzz_http_request server http.dict 4096
run fuzz_request_json config json.dict 8192
run fuzz_tokenizer_json runtime "" 65536 tests/fixtures/tokenizers/*/tokenizer.json
echo "fuzz-smoke: all targets clean"
