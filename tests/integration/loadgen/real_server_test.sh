#!/usr/bin/env bash
# The load generator against a real Aurora server on loopback.
# usage: real_server_test.sh AURORA_LOADGEN "SERVER COMMAND with {port}"
# Starts the server, waits for GET /health, drives it over SSE chat, SSE completions and the
# WebSocket endpoint, and checks that every request succeeded with tokens counted from usage.
# Then it cancels every request of a run 0.1 s after sending it (--request-cancellation-rate 100),
# over SSE and over WebSocket, and checks that the server's counters in /metrics rose by the
# number the load generator cancelled: aurora:client_disconnects_total for SSE (the connection is
# closed), aurora:request_success_total{finished_reason="abort"} for both.
set -uo pipefail
loadgen=$1
cmd=${2:-}
if [ -z "$cmd" ]; then
  echo "no server command: set AURORA_LOADGEN_SERVER_CMD (see tests/integration/loadgen/CMakeLists.txt)"
  exit 1
fi
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
while ! port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
cmd=${cmd//\{port\}/$port}
tmp=$(mktemp -d)
echo "starting: $cmd"
$cmd >"$tmp/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

health() {
  if command -v curl >/dev/null; then
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
     head -1 <&3 | grep -q ' 200 ') 2>/dev/null
  fi
}
for _ in $(seq 1 480); do
  health && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the server exited before it was ready:"
    cat "$tmp/server.log"
    exit 1
  fi
  sleep 0.25
done
if ! health; then
  echo "the server did not answer GET /health within 120 s:"
  tail -50 "$tmp/server.log"
  exit 1
fi

status=0
for backend in openai-chat openai aurora-ws; do
  out="$tmp/$backend.json"
  if ! "$loadgen" --port "$port" --backend "$backend" --num-prompts 8 --request-rate 4 --max-concurrency 4 \
      --random-input-len 32 --random-output-len 16 --dataset-name synthetic-chat --request-timeout 120 \
      --progress off --save-result "$out"; then
    echo "FAIL: $backend run"
    status=1
    continue
  fi
  for want in '"completed": 8,' '"failed": 0,' '"output_tokens_source": "usage",'; do
    if ! grep -q "$want" "$out"; then
      echo "FAIL: $backend: expected $want in the result"
      status=1
    fi
  done
  grep -E '"(mean_ttft_ms|mean_tpot_ms|output_throughput)"' "$out"
done
metrics() {
  if command -v curl >/dev/null; then
    curl -sf "http://127.0.0.1:$port/metrics"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 &&
     cat <&3) 2>/dev/null
  fi
}
# The sum of the samples whose line matches a regular expression (comments excluded).
metric_sum() { metrics | awk -v re="$1" '$0 !~ /^#/ && $0 ~ re { s += $NF } END { printf "%d\n", s }'; }
json_int() { grep -o "\"$2\": [0-9]*" "$1" | head -1 | grep -o '[0-9]*$'; }
disconnects='^aurora:client_disconnects_total'
aborts='^aurora:request_success_total[{].*finished_reason="abort"'
for backend in openai-chat aurora-ws; do
  out="$tmp/cancel-$backend.json"
  disconnects0=$(metric_sum "$disconnects")
  aborts0=$(metric_sum "$aborts")
  # Long generations (the embedded model writes ~3000 tokens/s alone) cancelled after 0.1 s.
  if ! "$loadgen" --port "$port" --backend "$backend" --num-prompts 8 --max-concurrency 4 \
      --random-input-len 32 --random-output-len 2000 --dataset-name synthetic-chat --request-timeout 120 \
      --request-cancellation-rate 100 --request-cancellation-delay 0.1 --progress off --quiet --save-result "$out"; then
    echo "FAIL: $backend cancellation run"
    status=1
    continue
  fi
  cancelled=$(json_int "$out" cancelled)
  completed=$(json_int "$out" completed)
  failed=$(json_int "$out" failed)
  echo "$backend: cancelled $cancelled, completed $completed, failed $failed"
  if [ "${cancelled:-0}" -eq 0 ] || [ "${failed:-1}" -ne 0 ] || [ $((cancelled + completed)) -ne 8 ]; then
    echo "FAIL: $backend: expected every request cancelled or completed, none failed, some cancelled"
    status=1
    continue
  fi
  # SSE: one disconnect per cancel. WebSocket: response.cancel on a socket that stays open (its
  # close at the end of the run may race the server's last writes, so it is not counted here).
  want_disconnects=$cancelled
  [ "$backend" = aurora-ws ] && want_disconnects=
  # The engine frees a cancelled request at its next step: give the counters a moment.
  for _ in $(seq 1 50); do
    d=$(($(metric_sum "$disconnects") - disconnects0))
    a=$(($(metric_sum "$aborts") - aborts0))
    [ "$a" -ge "$cancelled" ] && [ "$d" -ge "${want_disconnects:-0}" ] && break
    sleep 0.1
  done
  echo "$backend: server counted $d client disconnects and $a aborted requests"
  if [ "$a" -ne "$cancelled" ] || { [ -n "$want_disconnects" ] && [ "$d" -ne "$want_disconnects" ]; }; then
    echo "FAIL: $backend: expected ${want_disconnects:-any number of} disconnects and $cancelled aborts"
    status=1
  fi
done
if [ $status -ne 0 ]; then
  echo "--- server log ---"
  tail -50 "$tmp/server.log"
fi
exit $status
