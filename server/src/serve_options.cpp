#include "aurora/server/serve_options.hpp"

#include <charconv>
#include <cstdlib>
#include <optional>

#include "aurora/config/json.hpp"

namespace aurora::server {

namespace {

struct EngineFlag {
  const char* flag;
  const char* help;
};

constexpr EngineFlag kEngineFlags[] = {
    {"--model", "model directory (repeat to colocate two models; none = the embedded tiny model)"},
    {"--device", "cpu, cuda:N or auto (default auto)"},
    {"--ranks", "expert-parallel ranks (CPU: in-process; GPU: one per GPU from --device on; default 1)"},
    {"--max-num-seqs", "running batch cap (default 64)"},
    {"--max-num-batched-tokens", "tokens per engine step, prefill chunks included (default 512)"},
    {"--max-waiting", "waiting queue cap; past it requests get 503 + Retry-After (default 256)"},
    {"--max-waiting-tokens",
     "prompt tokens the waiting queue may hold; past it 503 + Retry-After (default 0 = the larger of 32 x "
     "max-num-batched-tokens and 1024 x max-waiting)"},
    {"--kv-block-size", "tokens per KV block (default 16)"},
    {"--kv-cache-tokens", "KV cache capacity in tokens (default 0 = from memory)"},
    {"--seed", "default sampling seed base (default 0)"},
    {"--chat-template", "chatml, llama, mistral, tulu or plain (default: detected from tokenizer_config.json)"},
    {"--random-weights", "random weights from each model directory's config.json, no checkpoint (GPU: made on device)"},
    {"--gpu-memory-fraction", "share of GPU memory for weights + KV cache (default 0.90)"},
};

bool is_engine_bool_flag(const std::string& flag) { return flag == "--random-weights"; }

Result<int64_t> parse_int(const std::string& flag, const std::string& value, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return Error::invalid(flag, "must be an integer, got '" + value + "'");
  }
  if (v < lo || v > hi) {
    return Error::invalid(flag, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + value);
  }
  return v;
}

// Applies one engine flag; false when `flag` is not an engine flag.
Result<bool> apply_engine_flag(runtime::EngineOptions& e, const std::string& flag, const std::string& value) {
  auto set_int = [&](auto& field, int64_t lo, int64_t hi) -> Result<bool> {
    auto v = parse_int(flag, value, lo, hi);
    if (!v) return v.error();
    field = static_cast<std::remove_reference_t<decltype(field)>>(*v);
    return true;
  };
  if (flag == "--model") {
    e.model_dirs.push_back(value);
    return true;
  }
  if (flag == "--device") {
    e.device = value;
    return true;
  }
  if (flag == "--chat-template") {
    e.chat_template = value;
    return true;
  }
  if (flag == "--ranks") return set_int(e.num_ranks, 1, 1024);
  if (flag == "--max-num-seqs") return set_int(e.max_num_seqs, 1, 1 << 20);
  if (flag == "--max-num-batched-tokens") return set_int(e.max_num_batched_tokens, 1, 1 << 24);
  if (flag == "--max-waiting") return set_int(e.max_waiting, 0, 1 << 24);
  if (flag == "--max-waiting-tokens") return set_int(e.max_waiting_tokens, 0, int64_t{1} << 40);
  if (flag == "--kv-block-size") return set_int(e.kv_block_size, 1, 1 << 16);
  if (flag == "--kv-cache-tokens") return set_int(e.kv_cache_tokens, 0, int64_t{1} << 40);
  if (flag == "--random-weights") {
    if (value != "true" && value != "false") return Error::invalid(flag, "must be true or false, got '" + value + "'");
    e.random_weights = value == "true";
    return true;
  }
  if (flag == "--gpu-memory-fraction") {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(v > 0.0 && v <= 1.0)) {
      return Error::invalid(flag, "must be a number in (0, 1], got '" + value + "'");
    }
    e.gpu_memory_fraction = v;
    return true;
  }
  if (flag == "--seed") {
    auto v = parse_int(flag, value, 0, INT64_MAX);
    if (!v) return v.error();
    e.seed = static_cast<uint64_t>(*v);
    return true;
  }
  auto online = runtime::apply_online_flag(e.online, flag, value);  // --replan, thresholds, --rank-speeds
  if (!online || *online) return online;
  return runtime::apply_emulation_flag(e.emulation, flag, value);  // --emulate-*: paced CPU ranks
}

Result<void> apply_engine_json(runtime::EngineOptions& e, const config::JsonValue& engine) {
  return capture_errors([&] {
    for (const auto& [key, v] : engine.members()) {
      std::string flag = "--";
      for (char c : key) flag += c == '_' ? '-' : c;
      if (key == "model") {
        for (const auto& dir : v.items()) e.model_dirs.push_back(dir.as_string());
        continue;
      }
      std::string value;
      if (v.is_string()) {
        value = v.as_string();
      } else if (v.is_bool()) {
        value = v.as_bool() ? "true" : "false";
      } else if (v.is_array()) {  // rank_speeds: [1, 1, 0.5, 0.5]
        for (const auto& item : v.items()) {
          if (!value.empty()) value += ',';
          value += item.raw();
        }
      } else if (v.is_number()) {
        value = v.raw();  // the flag's own parser checks integers and ranges
      } else {
        v.fail("must be a string, a number, a boolean or an array");
      }
      auto applied = apply_engine_flag(e, flag, value);
      if (!applied) throw_invalid(v.path(), applied.error().message);
      if (!*applied) v.fail("unknown engine setting");
    }
  });
}

// Pads `text` to a column of `width` (at least two spaces).
std::string padded(const std::string& text, size_t width) {
  return text + std::string(text.size() + 2 > width ? 2 : width - text.size(), ' ');
}

}  // namespace

Result<ServeOptions> parse_serve_args(const std::vector<std::string>& args) {
  ServeOptions out;
  // Split `--flag=value` and `--flag value`; a boolean setting may stand alone.
  struct Arg {
    std::string flag;
    std::optional<std::string> value;
  };
  std::vector<Arg> parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out.help = true;
      return out;
    }
    if (a.rfind("--", 0) != 0) return Error::invalid(a, "unexpected argument (flags start with --)");
    Arg arg;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      arg.flag = a.substr(0, eq);
      arg.value = a.substr(eq + 1);
    } else {
      arg.flag = a;
      const auto* setting = config::find_server_setting(a);
      const bool is_bool =
          (setting != nullptr && std::holds_alternative<bool*>(setting->ref(out.server))) || is_engine_bool_flag(a);
      if (i + 1 < args.size() && !(is_bool && args[i + 1].rfind("--", 0) == 0)) {
        arg.value = args[++i];
      } else if (is_bool) {
        arg.value = "true";
      } else {
        return Error::invalid(a, "needs a value");
      }
    }
    parsed.push_back(std::move(arg));
  }
  for (const auto& arg : parsed) {
    if (arg.flag != "--config") continue;
    auto doc = config::JsonDocument::parse_file(*arg.value);
    if (!doc) return doc.error();
    auto root = doc->root();
    if (!root.is_object()) return Error::invalid(*arg.value, "must hold a JSON object of settings");
    auto applied = config::apply_server_config_json(out.server, root, {"engine"});
    if (!applied) return Error::invalid(applied.error().field, *arg.value + ": " + applied.error().message);
    if (auto engine = root.find("engine")) {
      auto e = apply_engine_json(out.engine, *engine);
      if (!e) return Error::invalid(e.error().field, *arg.value + ": " + e.error().message);
    }
  }
  for (const auto& arg : parsed) {
    if (arg.flag == "--config") continue;
    auto engine = apply_engine_flag(out.engine, arg.flag, *arg.value);
    if (!engine) return engine.error();
    if (*engine) continue;
    if (config::find_server_setting(arg.flag) == nullptr) {
      return Error::invalid(arg.flag, "unknown flag (see `aurora serve --help`)");
    }
    auto set = config::set_server_setting(out.server, arg.flag, *arg.value);
    if (!set) return set.error();
  }
  auto valid = config::validate(out.server);
  if (!valid) return valid.error();
  return out;
}

std::string serve_usage() {
  std::string out =
      "usage: aurora serve [--model DIR]... [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--config FILE]\n"
      "                    [--ranks N] [--device D] [flags]\n\n"
      "Serves the OpenAI-compatible API (HTTP/SSE, WebSocket /v1/ws, /metrics) on the engine.\n"
      "SIGTERM/SIGINT drain in-flight requests (--drain-timeout-ms), then exit 0; a second signal exits at once.\n\n"
      "engine:\n";
  for (const auto& f : kEngineFlags) {
    out += "  " + padded(f.flag, 32) + f.help + "\n";
  }
  out += "\nonline Aurora (docs/online.md; more than one rank):\n";
  for (const auto& f : runtime::online_flag_help()) {
    out += "  " + padded(f.flag, 32) + f.help + "\n";
  }
  out += "\nemulated cluster (CPU ranks; docs/online.md):\n";
  for (const auto& f : runtime::emulation_flag_help()) {
    out += "  " + padded(f.flag, 32) + f.help + "\n";
  }
  out += "\nserver (also settable as flat keys in --config FILE):\n";
  config::ServerConfig defaults;
  for (const auto& s : config::server_settings()) {
    out += "  " + padded(config::server_setting_flag(s), 32) + s.help + " (default " +
           config::server_setting_text(s, defaults) + ")\n";
  }
  return out;
}

}  // namespace aurora::server
