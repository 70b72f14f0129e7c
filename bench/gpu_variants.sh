#!/usr/bin/env bash
# Alternated A/B rounds of aurora-gpu-bench variants, each value its own process, on the GPU machine,
# from a carried folder laid out as for gpu_run.sh ($CARRY/bin.tar.xz, optional $CARRY/var.tar.xz
# holding other builds under var/, $CARRY/lib/extra-libs.tar.xz, $CARRY/config/models).
#   VARS_<MIX|QWEN|OLMOE>="binary:ENV=1,ENV2=0 ..."  variants per model (binary relative to $CARRY)
#   B_<MIX|QWEN|OLMOE>=1,4    batches per model (default 1)          REPS=3   rounds
#   TESTS=1                   the GPU tests first (AURORA_REQUIRE_GPU=1)
#   TMODELS="model:FROM:COUNT ..." TRACES="binary:ENV=1 ..."  a CUPTI trace of one layer per variant
#                             (AURORA_TRACE_TIMELINE=FROM:COUNT: the kernels of the last replayed step)
#   TLINES=12                 lines of each timeline printed
# Example (docs/benchmarks.md, 2026-11-29):
#   B=bin/aurora-gpu-bench VARS_MIX="$B:X=1 $B:AURORA_DECODE_MMA_SMALL=0" B_MIX=1,2,4 bash bench/gpu_variants.sh
set -u
CARRY="$(cd "$(dirname "$0")/.." && pwd)"
cd "$CARRY"
tar xJf bin.tar.xz
[ -f var.tar.xz ] && tar xJf var.tar.xz
mkdir -p /tmp/aurora-lib && tar xJf lib/extra-libs.tar.xz -C /tmp/aurora-lib
export LD_LIBRARY_PATH="/tmp/aurora-lib:/usr/local/cuda/lib64:$CARRY/lib/cupti:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
if [ "${TESTS:-0}" = 1 ]; then
  AURORA_REQUIRE_GPU=1 timeout 200 bin/gpu_kernels_test 2>&1 | tail -2
  AURORA_REQUIRE_GPU=1 timeout 200 bin/gpu_model_test 2>&1 | tail -2
fi
run() {  # model binary:env batches
  local m=$1 v=$2 b=${2%%:*} e=${2#*:}
  r=$(env ${e//,/ } timeout 90 "$b" --config "config/models/$m/config.json" --batches "$3" --prefill-reps 0 \
        --steps "${STEPS:-40}" 2>&1 | grep -E "decode batch" | sed 's/ (.*roofline,/,/;s/graph replays//;s/ms\/step//' |
        tr -s ' ' | tr '\n' '|')
  echo "$m $v :: $r"
}
for rep in $(seq "${REPS:-3}"); do
  for v in ${VARS_MIX:-}; do run Mixtral-8x7B-v0.1 "$v" "${B_MIX:-1}"; done
  for v in ${VARS_OLMOE:-}; do run OLMoE-1B-7B-0924 "$v" "${B_OLMOE:-1}"; done
  for v in ${VARS_QWEN:-}; do run Qwen3-30B-A3B "$v" "${B_QWEN:-1}"; done
done
for mt in ${TMODELS:-}; do
  m=${mt%%:*}
  for v in ${TRACES:-}; do
    b=${v%%:*}; e=${v#*:}
    echo "== trace $m $v"
    env ${e//,/ } AURORA_TRACE_TIMELINE="${mt#*:}" timeout 60 "$b" --config "config/models/$m/config.json" --batches 1 \
      --prefill-reps 0 --steps 20 --trace 2>&1 | grep -A"${TLINES:-12}" "timeline of"
  done
done
