#!/usr/bin/env bash
# End-to-end on one GPU: `aurora serve --random-weights` Mixtral-8x7B (bf16 weights generated on the
# device) driven by aurora-loadgen over HTTP/SSE; TTFT, TPOT and throughput land in $1/loadgen.json
# and the summary on stdout. Run from the carried folder (see gpu_run.sh).
set -u
OUTDIR="$1"
MODEL="${E2E_MODEL:-config/models/Mixtral-8x7B-v0.1}"
PORT="${E2E_PORT:-8321}"
bin/aurora serve --model "$MODEL" --random-weights --device cuda:0 --host 127.0.0.1 --port "$PORT" \
  --max-num-seqs 64 --max-num-batched-tokens 2048 > "$OUTDIR/serve.log" 2>&1 &
SERVER=$!
ready=0
for _ in $(seq 1 240); do
  if python3 - "$PORT" <<'PY' 2>/dev/null; then ready=1; break; fi
import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=1).read()
PY
  if ! kill -0 "$SERVER" 2>/dev/null; then break; fi
  sleep 0.5
done
if [ "$ready" != 1 ]; then
  echo "server did not become ready"; tail -20 "$OUTDIR/serve.log"; kill -TERM "$SERVER" 2>/dev/null; exit 1
fi
grep -E "aurora:|listening" "$OUTDIR/serve.log" | head -5
timeout "${E2E_TIMEOUT:-150}" bin/aurora-loadgen --backend openai --base-url "http://127.0.0.1:$PORT" \
  --dataset-name random --random-input-len 512 --random-output-len 128 --ignore-eos \
  --num-prompts "${E2E_PROMPTS:-256}" --request-rate "${E2E_RATE:-8}" --max-concurrency 64 \
  --progress off --save-result "$OUTDIR/loadgen.json" 2>&1 | tail -45
kill -TERM "$SERVER"
wait "$SERVER"
echo "server exit $?"
tail -5 "$OUTDIR/serve.log"
