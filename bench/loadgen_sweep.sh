#!/usr/bin/env bash
# The embedded model's latency/throughput curve on CPU (a rate sweep) and a shifting-mix run,
# recorded in docs/benchmarks.md.
#
# usage: bench/loadgen_sweep.sh AURORA_BINARY [OUT_DIR]
#   Starts `AURORA_BINARY serve` on a free loopback port (the embedded model by default), runs
#   aurora-loadgen at each rate of $RATES, then one shifting-mix run (prose-heavy, then code-heavy,
#   then digits) with the time series drawn as OUT_DIR/shifting_mix.svg, and prints Markdown tables.
# Environment (defaults in brackets):
#   LOADGEN       aurora-loadgen binary               [build/release/loadgen/aurora-loadgen]
#   SERVER_ARGS   extra `aurora serve` arguments      []
#   SERVER_CMD    the whole server command, {port} replaced (overrides AURORA_BINARY serve ...)
#   RATES         request rates of the sweep (req/s)  [0.5 1 2 4 8 inf]
#   NUM_PROMPTS   requests per rate                   [48]
#   INPUT_LEN / OUTPUT_LEN   prompt and output tokens [128 / 64]
#   MAX_CONCURRENCY  cap for the inf-rate point       [32]
#   MIX_RATE      request rate of the shifting-mix run [2]
#   MIX_PHASE_S   seconds per mix phase               [60]
#   BACKEND       openai-chat | openai | aurora-ws     [openai-chat]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
aurora=${1:-}
out=${2:-$here/build/loadgen-sweep-$(date +%Y%m%d-%H%M%S)}
loadgen=${LOADGEN:-$here/build/release/loadgen/aurora-loadgen}
rates=${RATES:-0.5 1 2 4 8 inf}
num_prompts=${NUM_PROMPTS:-48}
input_len=${INPUT_LEN:-128}
output_len=${OUTPUT_LEN:-64}
max_concurrency=${MAX_CONCURRENCY:-32}
mix_rate=${MIX_RATE:-2}
mix_phase=${MIX_PHASE_S:-60}
backend=${BACKEND:-openai-chat}
if [ -z "$aurora" ] && [ -z "${SERVER_CMD:-}" ]; then
  sed -n '2,22p' "$0"
  exit 2
fi
[ -x "$loadgen" ] || { echo "aurora-loadgen not found at $loadgen (set LOADGEN)"; exit 2; }
mkdir -p "$out"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
while ! port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
if [ -n "${SERVER_CMD:-}" ]; then
  cmd=${SERVER_CMD//\{port\}/$port}
else
  cmd="$aurora serve --host 127.0.0.1 --port $port ${SERVER_ARGS:-}"
fi
echo "# server: $cmd" | tee "$out/commands.txt"
$cmd >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 480); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "server exited:"; cat "$out/server.log"; exit 1; }
  sleep 0.25
done
sleep 1

# field FILE KEY: a scalar from a result JSON (one "key": value per line).
field() { grep -m1 "\"$2\":" "$1" | sed -E 's/.*": *"?([^",]*)"?,?$/\1/'; }
fmt() { printf '%.1f' "$1" 2>/dev/null || echo "$1"; }

common=(--port "$port" --backend "$backend" --dataset-name random --random-input-len "$input_len"
        --random-output-len "$output_len" --progress off --seed 1 --percentile-metrics ttft,tpot,itl,e2el
        --metric-percentiles 50,90,99)
for rate in $rates; do
  extra=()
  [ "$rate" = inf ] && extra=(--max-concurrency "$max_concurrency")
  args=("${common[@]}" --num-prompts "$num_prompts" --request-rate "$rate" "${extra[@]}"
        --save-result "$out/rate_$rate.json" --quiet)
  echo "aurora-loadgen ${args[*]}" | tee -a "$out/commands.txt"
  "$loadgen" "${args[@]}" || echo "rate $rate: aurora-loadgen exited with $?"
done

echo
echo "| rate (req/s) | completed | failed | req/s | out tok/s | TTFT mean / p99 (ms) | TPOT mean / p99 (ms) | ITL p99 (ms) | E2EL mean (ms) | loadgen CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for rate in $rates; do
  f="$out/rate_$rate.json"
  [ -f "$f" ] || { echo "| $rate | (no result) |||||||||"; continue; }
  echo "| $rate | $(field "$f" completed) | $(field "$f" failed) | $(fmt "$(field "$f" request_throughput)") |" \
       "$(fmt "$(field "$f" output_throughput)") | $(fmt "$(field "$f" mean_ttft_ms)") / $(fmt "$(field "$f" p99_ttft_ms)") |" \
       "$(fmt "$(field "$f" mean_tpot_ms)") / $(fmt "$(field "$f" p99_tpot_ms)") | $(fmt "$(field "$f" p99_itl_ms)") |" \
       "$(fmt "$(field "$f" mean_e2el_ms)") | $(awk -v x="$(field "$f" cpu_fraction_of_one_core)" 'BEGIN{printf "%.1f%%", 100*x}') |"
done

# The shifting mix: the prompt kinds move the MoE router's expert load; Aurora should follow.
mix="prose=0.8,code=0.2@${mix_phase}s; prose=0.2,code=0.8@${mix_phase}s; digits=0.8,prose=0.2@${mix_phase}s"
args=("${common[@]}" --request-rate "$mix_rate" --duration "$((3 * mix_phase))" --traffic-mix "$mix"
      --scrape-metrics on --scrape-interval 1 --save-result "$out/shifting_mix.json" --plot "$out/shifting_mix.svg")
echo
echo "aurora-loadgen ${args[*]}" | tee -a "$out/commands.txt"
"$loadgen" "${args[@]}" || echo "shifting mix: aurora-loadgen exited with $?"
echo
echo "results in $out (rate_*.json, shifting_mix.json, shifting_mix.svg, commands.txt, server.log)"
