#!/usr/bin/env bash
# Online Aurora on 2 GPUs (issue 8): static placement vs online re-placement under a shifting
# traffic mix, OLMoE-1B-7B (64 experts, top-8) with random bf16 weights generated on the GPUs.
# Uses PREBUILT binaries (no build): $BIN (default ./bin) must hold aurora, aurora-loadgen and
# aurora-online-bench; run from a tree that has config/models/OLMoE-1B-7B-0924/config.json.
# Writes the table (table.txt), summary.json, timeline.svg and logs.tar.gz (serve, loadgen and
# plan logs) under $1 (default $OUT, else ./online_gpu_out). About 4 minutes. RANKS=4 on a 4-GPU host.
#
#   DEVICE=cpu bench/online/run_online_gpu.sh /tmp/x   # the same comparison on CPU ranks with the
#                                                      # embedded model (local check, ~1 minute)
set -euo pipefail
BIN="${BIN:-bin}"
OUTDIR="${1:-${OUT:-online_gpu_out}}"
DEVICE="${DEVICE:-cuda}"
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on shared machines
mkdir -p "$OUTDIR"
for b in aurora aurora-loadgen aurora-online-bench; do
  [ -x "$BIN/$b" ] || { echo "run_online_gpu.sh: $BIN/$b missing (set BIN to the prebuilt binaries)" >&2; exit 2; }
done

common=(--aurora "$BIN/aurora" --loadgen "$BIN/aurora-loadgen" --out "$OUTDIR"
        --mix-before "${MIX_BEFORE:-prose}" --mix-after "${MIX_AFTER:-digits}" --bucket-s 2)
if [ "$DEVICE" = cpu ]; then
  args=(--device cpu --ranks 4 --users 8 --before-s "${BEFORE_S:-8}" --after-s "${AFTER_S:-14}"
        --input-len 32 --output-len 32)
  limit=240
else
  # 2 x H200: 96 closed-loop users keep ~96 sequences per decode step (768 routed rows per MoE layer),
  # so expert GEMVs and the two all-to-alls are a real part of every step; NVLink-class links for the
  # planner's network model. The static run freezes the placement planned for the first mix.
  MODEL="${MODEL:-config/models/OLMoE-1B-7B-0924}"
  args=(--device cuda --ranks "${RANKS:-2}" --model "$MODEL" --users "${USERS:-96}"
        --before-s "${BEFORE_S:-25}" --after-s "${AFTER_S:-50}" --input-len 128 --output-len 128
        --link-gbps 2400 --phase-latency-us 20
        --serve-arg=--max-num-seqs --serve-arg=128 --serve-arg=--max-num-batched-tokens --serve-arg=2048
        --serve-arg=--replan-dwell-s --serve-arg=2)
  limit=280
fi
status=0
timeout "$limit" "$BIN/aurora-online-bench" "${common[@]}" "${args[@]}" 2> "$OUTDIR/bench.log" | tee "$OUTDIR/table.txt" || status=$?
if [ "$status" != 0 ]; then
  echo "aurora-online-bench failed ($status); last lines of its log:" >&2
  tail -20 "$OUTDIR/bench.log" >&2
  for f in "$OUTDIR"/*_serve.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -8 "$f" >&2; }; done
fi
# Few files come back from the GPU machine: the table, the JSON and the SVG stay, the logs and
# per-run data go into one archive.
(cd "$OUTDIR" && ls | grep -vE '^(table.txt|summary.json|timeline.svg|logs.tar.gz)$' > .pack || true
 if [ -s .pack ]; then tar czf logs.tar.gz -T .pack && xargs rm -f < .pack; fi; rm -f .pack)
ls -la "$OUTDIR" >&2
exit "$status"
