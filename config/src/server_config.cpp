#include "aurora/config/server_config.hpp"

#include <charconv>
#include <limits>

#include "aurora/config/json.hpp"

namespace aurora::config {

namespace {

constexpr int64_t kI32 = std::numeric_limits<int32_t>::max();
constexpr int64_t kDay = 24LL * 3600 * 1000;

#define AURORA_REF(member) +[](ServerConfig& c) -> ServerSetting::Ref { return &c.member; }

const std::vector<ServerSetting> kSettings = {
    {"host", "address to bind (127.0.0.1 = this machine only)", 0, 0, AURORA_REF(host)},
    {"port", "TCP port (0 = any free port)", 0, 65535, AURORA_REF(port)},
    {"api_key", "bearer key required on every route but /health (\"\" = none)", 0, 0, AURORA_REF(api_key)},
    {"allow_insecure_remote", "allow binding a non-loopback address without an API key", 0, 0,
     AURORA_REF(allow_insecure_remote)},
    {"allowed_hosts",
     "Host header allowlist, comma-separated (\"\" = loopback names on a loopback bind, any host otherwise; "
     "\"*\" = any; \".example.com\" = its subdomains)",
     0, 0, AURORA_REF(allowed_hosts)},
    {"io_threads", "network threads (0 = min(4, max(1, cores/2)))", 0, 256, AURORA_REF(io_threads)},
    {"access_log", "log one line per request to stderr", 0, 0, AURORA_REF(access_log)},
    {"max_header_bytes", "request line + headers, else 431", 512, 1 << 20, AURORA_REF(max_header_bytes)},
    {"max_header_fields", "header fields per request, else 431", 4, 10'000, AURORA_REF(max_header_fields)},
    {"max_body_bytes", "request body (from Content-Length, before reading it), else 413", 1, 1LL << 30,
     AURORA_REF(max_body_bytes)},
    {"header_timeout_ms", "time to receive the whole header, else 408", 1, kDay, AURORA_REF(header_timeout_ms)},
    {"body_timeout_ms", "time between two body reads, else 408", 1, kDay, AURORA_REF(body_timeout_ms)},
    {"body_total_timeout_ms", "time to receive the whole body, else 408", 1, kDay, AURORA_REF(body_total_timeout_ms)},
    {"idle_timeout_ms", "keep-alive: wait this long for the next request", 1, kDay, AURORA_REF(idle_timeout_ms)},
    {"write_timeout_ms", "a write that stalls this long (slow reader) closes the connection", 1, kDay,
     AURORA_REF(write_timeout_ms)},
    {"sse_keepalive_ms", "SSE comment on a stream idle this long", 1, kDay, AURORA_REF(sse_keepalive_ms)},
    {"drain_timeout_ms", "on SIGTERM/SIGINT, in-flight requests get this long to finish", 0, kDay,
     AURORA_REF(drain_timeout_ms)},
    {"no_progress_timeout_ms",
     "a request that gets no token for this long, while the engine finishes no step, ends with an error and is "
     "cancelled (0 = never)",
     0, kDay, AURORA_REF(no_progress_timeout_ms)},
    {"engine_stall_ms", "/health answers 503 while the engine has work and finished no step for this long (0 = never)",
     0, kDay, AURORA_REF(engine_stall_ms)},
    {"engine_failed_steps", "/health answers 503 after this many failed engine steps in a row (0 = never)", 0, kI32,
     AURORA_REF(engine_failed_steps)},
    {"max_connections",
     "open connections (lowered at start-up, with a warning, to fit the open-file limit); past it and the reserve: "
     "503 and close",
     1, 1'000'000, AURORA_REF(max_connections)},
    {"reserved_connections",
     "connections beyond max_connections that serve only /health, /metrics and /v1/models (one request each; "
     "anything else: 503)",
     0, 4096, AURORA_REF(reserved_connections)},
    {"max_requests_per_connection", "requests per keep-alive connection", 1, kI32,
     AURORA_REF(max_requests_per_connection)},
    {"retry_after_s", "Retry-After sent with 503 and 429", 0, 3600, AURORA_REF(retry_after_s)},
    {"overload_status", "status when the waiting queue is full: 503 or 429", 429, 503, AURORA_REF(overload_status)},
    {"stream_queue_events", "events queued per stream before token deltas are coalesced", 4, 1 << 20,
     AURORA_REF(stream_queue_events)},
    {"stream_max_pending_bytes", "queued, unsent text per stream past which the request is cancelled", 1024, 1LL << 30,
     AURORA_REF(stream_max_pending_bytes)},
    {"tcp_user_timeout_ms", "TCP_USER_TIMEOUT: unacknowledged data this long = peer gone (0 = kernel default)", 0, kDay,
     AURORA_REF(tcp_user_timeout_ms)},
    {"tcp_keepalive_idle_s", "TCP keep-alive: idle time before the first probe (0 = keep-alive off)", 0, 86'400,
     AURORA_REF(tcp_keepalive_idle_s)},
    {"tcp_keepalive_interval_s", "TCP keep-alive: time between probes", 1, 86'400,
     AURORA_REF(tcp_keepalive_interval_s)},
    {"tcp_keepalive_count", "TCP keep-alive: unanswered probes before the peer is declared gone", 1, 100,
     AURORA_REF(tcp_keepalive_count)},
    {"ws_max_message_bytes", "WebSocket message, else close 1009", 1024, 1LL << 30, AURORA_REF(ws_max_message_bytes)},
    {"ws_max_inflight", "concurrent requests on one WebSocket, else an error event with status 429", 1, 1 << 16,
     AURORA_REF(ws_max_inflight)},
    {"ws_handshake_timeout_ms", "WebSocket handshake and close timeout", 1, kDay, AURORA_REF(ws_handshake_timeout_ms)},
    {"ws_idle_timeout_ms", "WebSocket idle timeout (pings at half of it)", 1, kDay, AURORA_REF(ws_idle_timeout_ms)},
    {"max_n", "`n` (choices per request)", 1, 128, AURORA_REF(limits.max_n)},
    {"max_stop", "stop strings per request", 0, 1024, AURORA_REF(limits.max_stop)},
    {"max_stop_bytes", "bytes per stop string", 1, 1 << 20, AURORA_REF(limits.max_stop_bytes)},
    {"max_stop_token_ids", "`stop_token_ids` per request", 0, 1 << 20, AURORA_REF(limits.max_stop_token_ids)},
    {"max_messages", "chat messages per request", 1, 1 << 24, AURORA_REF(limits.max_messages)},
    {"max_prompts", "prompts in one completions request", 1, 1024, AURORA_REF(limits.max_prompts)},
    {"max_json_depth", "nesting depth of a request body", 2, 1024, AURORA_REF(limits.max_json_depth)},
    {"max_logprobs", "chat `top_logprobs` and completions `logprobs`, at most", 0, 1024,
     AURORA_REF(limits.max_logprobs)},
};

#undef AURORA_REF

std::string flag_of(const char* key) {
  std::string flag = "--";
  for (const char* p = key; *p != '\0'; ++p) flag += *p == '_' ? '-' : *p;
  return flag;
}

std::string normalise(std::string_view key) {
  std::string k(key);
  if (k.rfind("--", 0) == 0) k.erase(0, 2);
  for (auto& c : k) c = c == '-' ? '_' : c;
  return k;
}

Result<void> check_range(const ServerSetting& s, int64_t v, const std::string& field) {
  if (v < s.min || v > s.max) {
    return Error::invalid(
        field, "must be in [" + std::to_string(s.min) + ", " + std::to_string(s.max) + "], got " + std::to_string(v));
  }
  return {};
}

}  // namespace

const std::vector<ServerSetting>& server_settings() { return kSettings; }

const ServerSetting* find_server_setting(std::string_view key_or_flag) {
  const std::string key = normalise(key_or_flag);
  for (const auto& s : kSettings) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

Result<void> set_server_setting(ServerConfig& config, std::string_view key, std::string_view value) {
  const ServerSetting* s = find_server_setting(key);
  if (s == nullptr) return Error::invalid(std::string(key), "unknown setting");
  const std::string field = flag_of(s->key);
  auto ref = s->ref(config);
  if (auto* str = std::get_if<std::string*>(&ref)) {
    **str = std::string(value);
    return {};
  }
  if (auto* b = std::get_if<bool*>(&ref)) {
    if (value == "true" || value == "1" || value == "on") {
      **b = true;
    } else if (value == "false" || value == "0" || value == "off") {
      **b = false;
    } else {
      return Error::invalid(field, "must be true or false, got '" + std::string(value) + "'");
    }
    return {};
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return Error::invalid(field, "must be an integer, got '" + std::string(value) + "'");
  }
  auto range = check_range(*s, v, field);
  if (!range) return range;
  if (auto* i32 = std::get_if<int32_t*>(&ref)) {
    **i32 = static_cast<int32_t>(v);
  } else {
    **std::get_if<int64_t*>(&ref) = v;
  }
  return {};
}

Result<void> apply_server_config_json(ServerConfig& config, const JsonValue& object,
                                      const std::vector<std::string>& ignore) {
  return capture_errors([&] {
    for (const auto& [key, v] : object.members()) {
      bool skip = false;
      for (const auto& i : ignore) skip = skip || i == key;
      if (skip) continue;
      const ServerSetting* s = find_server_setting(key);
      if (s == nullptr || key != s->key) v.fail("unknown setting");
      auto ref = s->ref(config);
      if (auto* str = std::get_if<std::string*>(&ref)) {
        **str = v.as_string();
      } else if (auto* b = std::get_if<bool*>(&ref)) {
        **b = v.as_bool();
      } else if (auto* i32 = std::get_if<int32_t*>(&ref)) {
        **i32 = static_cast<int32_t>(v.int_in(s->min, s->max));
      } else {
        **std::get_if<int64_t*>(&ref) = v.int_in(s->min, s->max);
      }
    }
  });
}

Result<ServerConfig> load_server_config_file(const std::string& path, const std::vector<std::string>& ignore) {
  auto doc = JsonDocument::parse_file(path);
  if (!doc) return doc.error();
  ServerConfig config;
  auto root = doc->root();
  if (!root.is_object()) return Error::invalid(path, "must hold a JSON object of settings");
  auto applied = apply_server_config_json(config, root, ignore);
  if (!applied) {
    Error e = applied.error();
    e.message = path + ": " + e.message;
    return e;
  }
  auto valid = validate(config);
  if (!valid) return valid.error();
  return config;
}

Result<void> validate(const ServerConfig& config) {
  if (config.overload_status != 503 && config.overload_status != 429) {
    return Error::invalid("overload_status", "must be 503 or 429, got " + std::to_string(config.overload_status));
  }
  if (config.host.empty()) return Error::invalid("host", "must not be empty");
  if (config.body_total_timeout_ms < config.body_timeout_ms) {
    return Error::invalid("body_total_timeout_ms", "must be >= body_timeout_ms (" +
                                                       std::to_string(config.body_timeout_ms) + "), got " +
                                                       std::to_string(config.body_total_timeout_ms));
  }
  return {};
}

std::string server_setting_flag(const ServerSetting& setting) { return flag_of(setting.key); }

std::string server_setting_text(const ServerSetting& setting, ServerConfig& config) {
  auto ref = setting.ref(config);
  if (auto* str = std::get_if<std::string*>(&ref)) return "\"" + **str + "\"";
  if (auto* b = std::get_if<bool*>(&ref)) return **b ? "true" : "false";
  if (auto* i32 = std::get_if<int32_t*>(&ref)) return std::to_string(**i32);
  return std::to_string(**std::get_if<int64_t*>(&ref));
}

std::string server_settings_markdown() {
  ServerConfig defaults;
  std::string out = "| setting (JSON key) | flag | default | meaning |\n|---|---|---|---|\n";
  for (const auto& s : kSettings) {
    out += "| `" + std::string(s.key) + "` | `" + flag_of(s.key) + "` | " + server_setting_text(s, defaults) + " | " +
           s.help + " |\n";
  }
  return out;
}

}  // namespace aurora::config
