#!/usr/bin/env bash
# Builds aurora-gpu-bench with phase probes (globaltimer stamps) in the decode attention and router
# kernels and in the fused expert FFN, copies it to $1, and restores the sources and the build.
# Usage, from the repository root, after the release build (cmake --preset release or the README's
# build):
#   bash bench/probe/build_probe_bench.sh /tmp/bench_probe
#   /tmp/bench_probe --config config/models/Qwen3-30B-A3B/config.json --batches 1 --prefill-reps 0
# prints, per batch, "attention probe ..." and "router probe ...": the mean time (us after the
# block's entry) at which the probed block reached each phase, over the last 256 launches; and "ffn
# probe ...": the last fused expert FFN launch's timeline.
set -eu
OUT_BIN="$1"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD_DIR:-$ROOT/build/release}"
FILES=(kernels/cuda/attention_cluster.cu kernels/cuda/moe.cu kernels/cuda/expert_ffn.cu bench/gpu_moe_bench.cpp)
SAVE="$(mktemp -d)"
for f in "${FILES[@]}"; do mkdir -p "$SAVE/$(dirname "$f")" && cp -p "$ROOT/$f" "$SAVE/$f"; done
restore() { for f in "${FILES[@]}"; do cp -p "$SAVE/$f" "$ROOT/$f"; done; rm -rf "$SAVE"; }
trap restore EXIT
python3 "$ROOT/bench/probe/attention_probe.py" "$ROOT/kernels/cuda/attention_cluster.cu"
python3 "$ROOT/bench/probe/router_probe.py" "$ROOT/kernels/cuda/moe.cu"
python3 "$ROOT/bench/probe/ffn_probe.py" "$ROOT/kernels/cuda/expert_ffn.cu"
python3 "$ROOT/bench/probe/bench_patch.py" "$ROOT/bench/gpu_moe_bench.cpp"
cmake --build "$BUILD" --target aurora-gpu-bench
cp "$BUILD/bench/aurora-gpu-bench" "$OUT_BIN"
restore
trap - EXIT
# The sources are back: rebuild so that the tree's binary is the normal one again.
touch "${FILES[@]/#/$ROOT/}"
cmake --build "$BUILD" --target aurora-gpu-bench
echo "probe bench: $OUT_BIN"
