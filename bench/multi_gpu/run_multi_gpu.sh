#!/usr/bin/env bash
# One device call (nvidia-h200-x2 or larger): the multi-GPU tests with AURORA_REQUIRE_GPU=1, then
# aurora-multi-gpu-bench; logs, results.json and timeline.svg go to $OUT, the tables to stdout.
# Everything comes from a carried folder (binaries built on the dev machine for sm_90a):
#   $CARRY/bin/{multi_gpu_test,aurora-multi-gpu-bench}   $CARRY/config/OLMoE-1B-7B-0924.json
#   $CARRY/lib/extra-libs.tar.xz (Boost.JSON, simdjson, PCRE2, ICU; else ../cuda/lib's)
# NCCL: the device's CUDA toolkit, else the nvidia-nccl wheel that PyTorch ships.
# Usage: bash run_multi_gpu.sh [phases]   phases: info tests bench (default: all)
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # never NVLink multicast
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
CARRY="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-/tmp/aurora-multi-gpu-out}"
mkdir -p "$OUT"
LIBDIR=/tmp/aurora-mg-lib
mkdir -p "$LIBDIR"
for t in "$CARRY/lib/extra-libs.tar.xz" "$CARRY/../cuda/lib/extra-libs.tar.xz"; do
  if [ -f "$t" ]; then tar xJf "$t" -C "$LIBDIR" && break; fi
done
NCCL_DIR=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu \
         "$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)"; do
  if [ -n "$d" ] && [ -f "$d/libnccl.so.2" ]; then NCCL_DIR="$d"; break; fi
done
export LD_LIBRARY_PATH="$LIBDIR:$NCCL_DIR:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
PHASES="${*:-info tests bench}"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
has() { [[ " $PHASES " == *" $1 "* ]]; }

if has info; then
  say "info"
  { date -u; nvidia-smi --query-gpu=index,name,memory.total,memory.used,clocks.sm --format=csv; nvidia-smi topo -m;
    echo "NCCL from: $NCCL_DIR"; ldd "$CARRY/bin/aurora-multi-gpu-bench" | grep -E "not found|nccl|cudart|cublas"; } 2>&1 | tee "$OUT/info.log"
fi

if has tests; then
  say "multi_gpu_test (AURORA_REQUIRE_GPU=1)"
  AURORA_REQUIRE_GPU=1 timeout ${TEST_TIMEOUT:-150} "$CARRY/bin/multi_gpu_test" --durations yes > "$OUT/multi_gpu_test.log" 2>&1
  echo "exit $?" >> "$OUT/multi_gpu_test.log"
  grep -E "passed|failed|FAILED|step [0-9]: |exit |Duration|error|REQUIRE|CHECK|with expansion" "$OUT/multi_gpu_test.log" | tail -60
fi

if has bench; then
  say "aurora-multi-gpu-bench"
  timeout ${BENCH_TIMEOUT:-210} "$CARRY/bin/aurora-multi-gpu-bench" --config "$CARRY/config/OLMoE-1B-7B-0924.json" --out "$OUT" \
    ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
  echo "exit $?" >> "$OUT/bench.log"
  grep -v "^NCCL INFO" "$OUT/bench.log" | tail -80
fi
say "done"
