#!/usr/bin/env bash
# Nsight Compute on one launch of each named decode kernel (graph-replayed, batch 1): speed of light,
# memory workload (DRAM and L2 throughput, hit rates), occupancy, warp states, and the SASS lines
# with the most stall samples. From a carried folder laid out as gpu_run.sh expects (bin.tar.xz or
# bin/, lib/extra-libs.tar.xz, lib/cupti, config/models). Usage on the device:
#   M=Mixtral-8x7B-v0.1 KRS="expert_ffn_kernel" bash bench/gpu_ncu_kernel.sh
# KRS: kernel-name regexes, one report each; SKIP: launches of the kernel skipped first (100).
set -u
source "$(dirname "$0")/gpu_ncu_env.sh"  # $C, $NCU, the libraries
m=${M:-Qwen3-30B-A3B}
for kr in ${KRS:-cluster_attention route_kernel}; do
  echo "######## $m $kr"
  timeout 200 "$NCU" --clock-control none --cache-control none -k "regex:$kr" --launch-skip ${SKIP:-100} --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats --section SourceCounters \
    -o /tmp/rep_$kr -f bin/aurora-gpu-bench --config "config/models/$m/config.json" --batches 1 --steps 10 --warmup 2 --prefill-reps 0 > /tmp/app.log 2>&1
  echo "ncu exit $?"; tail -1 /tmp/app.log
  "$NCU" --import /tmp/rep_$kr.ncu-rep --page details 2>&1 | grep -E "Duration|Registers Per|Grid Size|Warp Cycles Per Issued|Stall|No Eligible|Issued Warp Per|Throughput|Busy|Hit Rate|Bandwidth|Achieved Occupancy" | head -${DL:-30}
  "$NCU" --import /tmp/rep_$kr.ncu-rep --page source --csv --print-source sass > /tmp/src_$kr.csv 2>/tmp/src.err; head -c 300 /tmp/src.err
  python3 - /tmp/src_$kr.csv <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
if not rows: print("no rows"); sys.exit()
hdr = rows[0]
def col(name):
    for i, h in enumerate(hdr):
        if h.startswith(name): return i
    return -1
src = col("Source"); samp = col("Warp Stall Sampling (All")
if samp < 0: samp = col("Warp Stall Sampling")
print("columns:", hdr[:10])
data = []
for r in rows[1:]:
    try: data.append((float(r[samp].replace(",", "")), r[0], r[src]))
    except Exception: pass
tot = sum(d[0] for d in data) or 1
print(f"{len(data)} SASS lines, {tot:.0f} samples")
for v, a, s in sorted(data, reverse=True)[:25]:
    print(f"{100*v/tot:5.1f}% {a:>6} {s[:120]}")
PY
done
