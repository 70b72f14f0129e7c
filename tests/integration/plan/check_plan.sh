#!/bin/sh
# Runs `aurora plan` on a valid scenario and checks the outputs exist and carry the schema's keys.
# usage: check_plan.sh AURORA SCENARIO [extra aurora plan args...]
set -eu
aurora=$1; scenario=$2; shift 2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
"$aurora" plan "$scenario" --out "$dir/plan.json" --compare "$@" > "$dir/stdout"
for key in '"deployment"' '"gpus"' '"experts"' '"layers"' '"lower_bound_s"' '"makespan_s"' '"phases"' \
           '"duration_s"' '"transfers"' '"src_gpu"' '"dst_gpu"' '"bytes"' '"simulated"' '"inference_time_s"' \
           '"gpu_utilization"'; do
  grep -q "$key" "$dir/plan.json" || { echo "plan.json lacks $key"; exit 1; }
done
grep -q '^aurora ' "$dir/stdout" || { echo "no comparison table"; cat "$dir/stdout"; exit 1; }
grep -q '"speedup_of_aurora"' "$dir/plan.compare.json" || { echo "compare JSON missing"; exit 1; }
head -c 4 "$dir/plan.compare.svg" | grep -q '<svg' || { echo "compare SVG missing"; exit 1; }
for arg in "$@"; do
  if [ "$arg" = --exhaustive ]; then grep -q '"optimum"' "$dir/plan.json" || { echo "no optimum"; exit 1; }; fi
done
cat "$dir/stdout"
