#!/usr/bin/env bash
# Nsight Compute: per-kernel durations of one graph-replayed batch-1 decode step (M=<model>, default
# Mixtral), summed per kernel, from a carried folder laid out as gpu_run.sh expects (bin.tar.xz or
# bin/, lib/extra-libs.tar.xz, config/models). Usage on the device: M=Qwen3-30B-A3B bash bench/gpu_ncu_step.sh
set -u
source "$(dirname "$0")/gpu_ncu_env.sh"  # $C, $NCU, the libraries
m=${M:-Mixtral-8x7B-v0.1}
timeout 200 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
  --log-file /tmp/ncu.csv bin/aurora-gpu-bench --config "config/models/$m/config.json" --batches 1 --steps 1 \
  --warmup 1 --prefill-reps 0 > /tmp/app.log 2>&1
echo "ncu exit $?"; tail -3 /tmp/app.log
python3 - <<'PY'
import csv, re, collections
rows=[r for r in csv.reader(open('/tmp/ncu.csv')) if len(r)>10 and r[-3]=='gpu__time_duration.sum']
print(len(rows), 'kernels profiled')
# the graph-replayed step: the last kernels after the final 'embedding' launch
idx=[i for i,r in enumerate(rows) if 'embedding' in r[4]]
step=rows[idx[-1]:] if idx else rows[-400:]
tot=collections.OrderedDict()
for r in step:
    name=re.sub(r'\(.*','',r[4]); name=re.sub(r'.*::','',name); name=re.sub(r'<.*>','<>',name)
    v=float(r[-1].replace(',',''))
    tot.setdefault(name,[0,0.0]); tot[name][0]+=1; tot[name][1]+=v
s=sum(v for _,v in tot.values())
print(f'step kernels {len(step)}, sum of durations {s/1e6:.3f} ms')
for k,(n,v) in sorted(tot.items(), key=lambda x:-x[1][1]): print(f'{k:45s} {n:4d} {v/1e6:8.3f} ms  {v/n/1e3:7.1f} us each')
PY
