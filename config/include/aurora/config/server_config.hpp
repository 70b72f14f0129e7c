// ServerConfig: everything `aurora serve` is told about the network side: address, access, framing
// limits, timeouts, capacity, streaming and WebSocket limits, and the per-request caps.
//
// Every setting has one entry in server_settings() (key, default, range, help), which drives the
// JSON config file (`--config FILE`, flat keys), the command-line flags (`--key-with-dashes VALUE`)
// and the table in docs/server.md. Defaults follow nginx/Envoy practice and the anchors in
// docs/server.md. Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/protocol/requests.hpp"

namespace aurora::config {

class JsonValue;

struct ServerConfig {
  // Network and access.
  std::string host = "127.0.0.1";
  int32_t port = 8000;
  std::string api_key;                 // "" = no authentication
  bool allow_insecure_remote = false;  // allow a non-loopback bind without an API key
  std::string allowed_hosts;           // Host allowlist, comma-separated; "" = loopback names on a
                                       // loopback bind, any host otherwise; "*" = any
  int32_t io_threads = 0;              // 0 = min(4, max(1, cores / 2))
  bool access_log = false;             // one line per request on stderr

  // HTTP framing.
  int32_t max_header_bytes = 8 * 1024;       // request line + headers, else 431
  int32_t max_header_fields = 100;           // else 431
  int64_t max_body_bytes = 2 * 1024 * 1024;  // else 413 (checked from Content-Length before reading)

  // Timeouts.
  int64_t header_timeout_ms = 10'000;      // whole header, else 408
  int64_t body_timeout_ms = 10'000;        // between two body reads, else 408
  int64_t body_total_timeout_ms = 60'000;  // whole body, else 408
  int64_t idle_timeout_ms = 75'000;        // keep-alive: wait for the next request
  int64_t write_timeout_ms = 30'000;       // one write may stall this long (slow reader), then close
  int64_t sse_keepalive_ms = 15'000;       // comment line on an idle stream
  int64_t drain_timeout_ms = 30'000;       // SIGTERM: in-flight requests get this long
  // A wedged engine (reliability F14): a request that gets no token for this long, while the engine
  // finished no step for as long, ends with an error (SSE: an error event and [DONE]) and is
  // cancelled; 0 = never.
  int64_t no_progress_timeout_ms = 60'000;
  // Readiness: /health answers 503 "stalled" while the engine has work and has finished no step for
  // this long (0 = never), and 503 "failing" after this many failed steps in a row (0 = never).
  int64_t engine_stall_ms = 30'000;
  int32_t engine_failed_steps = 3;

  // Capacity.
  int32_t max_connections = 1024;     // past it: the reserve; past both: 503 and close
  int32_t reserved_connections = 16;  // beyond max_connections, for /health, /metrics, /v1/models only
  int32_t max_requests_per_connection = 1000;
  int32_t retry_after_s = 1;      // Retry-After on 503/429
  int32_t overload_status = 503;  // status when the waiting queue is full: 503 or 429

  // Streaming: the bounded channel between the engine and a session.
  int32_t stream_queue_events = 256;           // events queued before deltas are coalesced
  int64_t stream_max_pending_bytes = 1 << 20;  // queued text past this cancels the request

  // TCP.
  int64_t tcp_user_timeout_ms = 30'000;  // unacknowledged data this long = peer gone
  int32_t tcp_keepalive_idle_s = 30;
  int32_t tcp_keepalive_interval_s = 10;
  int32_t tcp_keepalive_count = 3;

  // WebSocket.
  int64_t ws_max_message_bytes = 1 << 20;  // else close 1009
  int32_t ws_max_inflight = 16;            // concurrent requests per socket, else error 429
  int64_t ws_handshake_timeout_ms = 30'000;
  int64_t ws_idle_timeout_ms = 300'000;  // with pings at half of it

  // Per-request caps.
  protocol::RequestLimits limits;
};

// One setting: its key (JSON key; the flag is `--` + key with '_' -> '-'), help and range.
struct ServerSetting {
  using Ref = std::variant<int32_t*, int64_t*, std::string*, bool*>;
  const char* key;
  const char* help;
  int64_t min = 0;
  int64_t max = 0;
  Ref (*ref)(ServerConfig&);
};

const std::vector<ServerSetting>& server_settings();

// `header_timeout_ms` -> `--header-timeout-ms`.
std::string server_setting_flag(const ServerSetting& setting);

// The setting's value in `config` as text: strings quoted, booleans true/false.
std::string server_setting_text(const ServerSetting& setting, ServerConfig& config);

// `--header-timeout-ms` -> the setting, or nullptr.
const ServerSetting* find_server_setting(std::string_view key_or_flag);

// Sets one setting from text (a command-line value). The error names the flag and the value.
Result<void> set_server_setting(ServerConfig& config, std::string_view key, std::string_view value);

// Reads a flat JSON object of settings; unknown keys are errors. Keys in `ignore` are skipped (the
// serve command keeps its engine settings in the same file).
Result<void> apply_server_config_json(ServerConfig& config, const JsonValue& object,
                                      const std::vector<std::string>& ignore = {});
Result<ServerConfig> load_server_config_file(const std::string& path, const std::vector<std::string>& ignore = {});

// Cross-field checks (overload_status is 429 or 503, body <= 1 GiB, ...).
Result<void> validate(const ServerConfig& config);

// A markdown table of every setting with its default (docs/server.md is generated from this).
std::string server_settings_markdown();

}  // namespace aurora::config
