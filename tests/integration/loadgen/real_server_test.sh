#!/usr/bin/env bash
# The load generator against a real Aurora server on loopback.
# usage: real_server_test.sh AURORA_LOADGEN "SERVER COMMAND with {port}"
# Starts the server, waits for GET /health, drives it over SSE chat, SSE completions and the
# WebSocket endpoint, and checks that every request succeeded with tokens counted from usage.
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
if [ $status -ne 0 ]; then
  echo "--- server log ---"
  tail -50 "$tmp/server.log"
fi
exit $status
