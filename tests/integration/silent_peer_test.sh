#!/usr/bin/env bash
# A peer that vanishes without FIN or RST (power loss, NAT drop) is detected by TCP_USER_TIMEOUT and
# its request cancelled. Inside a private network namespace (unshare -n), a stream runs, then a
# `tbf` qdisc on lo black-holes every packet: the server's data goes unacknowledged. With
# --tcp-user-timeout-ms 1000 the server must cancel the request (abort counter +1, KV freed) within
# ~2.5 s; the control run without TCP_USER_TIMEOUT must still hold the request (Linux would take
# ~15 minutes of retransmissions). Exit 77 (CTest "skipped") when namespaces or tc are unavailable.
set -uo pipefail
server=${1:?usage: silent_peer_test.sh SERVER_BINARY}
if [[ "${AURORA_IN_NETNS:-}" != 1 ]]; then
  if ! command -v tc >/dev/null || ! unshare -n true 2>/dev/null; then
    echo "silent_peer_test: needs root, unshare -n and tc: skipped" >&2
    exit 77
  fi
  exec unshare -n env AURORA_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
metric() {  # sum of a metric's samples whose line starts with $1
  curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { print s + 0 }'
}
run_case() {  # $1 = tcp_user_timeout_ms; prints the abort count after the blackout
  local log; log=$(mktemp)
  "$server" --port 0 --fake-step-ms 20 --tcp-user-timeout-ms "$1" --tcp-keepalive-idle-s 0 2>"$log" &
  local pid=$!
  for _ in $(seq 100); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$log" | sed 's/.*://')
    [[ -n "$port" ]] && break
    sleep 0.05
  done
  curl -sN --max-time 60 "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":3000,"stream":true}' >/dev/null &
  local client=$!
  sleep 0.5
  [[ $(metric 'aurora:streams_open') == 1 ]] || { echo "the stream did not start" >&2; cat "$log" >&2; return 1; }
  tc qdisc add dev lo root tbf rate 8bit burst 10 limit 1   # every packet on lo is dropped now
  sleep 2.5
  tc qdisc del dev lo root
  echo "$(metric 'aurora:request_success_total{model_name="fake-moe",finished_reason="abort"') $(metric 'aurora:kv_cache_blocks_used')"
  kill "$client" "$pid" 2>/dev/null
  wait "$client" "$pid" 2>/dev/null
  rm -f "$log"
}
read -r aborted kv < <(run_case 1000)
read -r control_aborted control_kv < <(run_case 0)
echo "with TCP_USER_TIMEOUT 1 s: aborted=$aborted kv_blocks=$kv; without: aborted=$control_aborted kv_blocks=$control_kv"
[[ "$aborted" == 1 && "$kv" == 0 && "$control_aborted" == 0 && "$control_kv" != 0 ]]
