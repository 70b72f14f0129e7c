#include "aurora/loadgen/workload.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "aurora/config/json.hpp"
#include "aurora/loadgen/arrivals.hpp"

namespace aurora::loadgen {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// Estimated tokens that make `server_tokens` of the server's tokenizer, and back.
int64_t to_estimate(const WorkloadConfig& c, PromptKind kind, int64_t server_tokens) {
  const double ratio = c.tokens_per_estimate[static_cast<size_t>(kind)];
  return std::max<int64_t>(1, std::llround(static_cast<double>(server_tokens) / ratio));
}
int64_t to_server(const WorkloadConfig& c, PromptKind kind, int64_t estimate) {
  return std::llround(static_cast<double>(estimate) * c.tokens_per_estimate[static_cast<size_t>(kind)]);
}

int64_t messages_estimate(const std::vector<ChatMessage>& messages) {
  int64_t total = 0;
  for (const auto& m : messages) total += estimate_tokens(m.content);
  return total;
}

// ---- random -------------------------------------------------------------------------------

class RandomWorkload : public Workload {
 public:
  RandomWorkload(const WorkloadConfig& config, TrafficMix mix)
      : config_(config), mix_(std::move(mix)), rng_(Rng::derived(config.seed, 2)) {}

  RequestSpec next(double t_s) override {
    const PromptKind kind = mix_.pick(t_s, rng_);
    const int64_t input_len = config_.input.sample(rng_);
    RequestSpec spec;
    spec.kind = prompt_kind_name(kind);
    spec.messages.push_back({"user", make_text(kind, to_estimate(config_, kind, input_len), rng_)});
    spec.input_tokens_estimate = to_server(config_, kind, estimate_tokens(spec.messages.back().content));
    spec.max_tokens = config_.output.sample(rng_);
    return spec;
  }
  std::string describe() const override {
    return "random (input " + std::to_string(config_.input.mean) + ", output " + std::to_string(config_.output.mean) +
           ", range ratio " + format_double(config_.input.range_ratio) + ", mix " + mix_.describe() + ")";
  }
  const TrafficMix* mix() const override { return &mix_; }

 private:
  WorkloadConfig config_;
  TrafficMix mix_;
  Rng rng_;
};

// ---- synthetic chat ----------------------------------------------------------------------

class SyntheticChatWorkload : public Workload {
 public:
  SyntheticChatWorkload(const WorkloadConfig& config, TrafficMix mix)
      : config_(config), mix_(std::move(mix)), rng_(Rng::derived(config.seed, 3)) {}

  RequestSpec next(double t_s) override {
    const PromptKind kind = mix_.pick(t_s, rng_);
    const int64_t target = to_estimate(config_, kind, config_.input.sample(rng_));
    RequestSpec spec;
    spec.kind = prompt_kind_name(kind);
    const bool multi_turn = rng_.uniform_int(0, 2) == 0;
    switch (kind) {
      case PromptKind::kProse:
        spec.messages.push_back({"system", "You are a thoughtful writing assistant. Keep the author's voice."});
        if (multi_turn) {
          spec.messages.push_back({"user", "Give me the opening line of a story set in a harbor town."});
          spec.messages.push_back({"assistant", make_text(PromptKind::kProse, 24, rng_)});
        }
        spec.messages.push_back({"user", "Continue this story in the same style:\n\n"});
        break;
      case PromptKind::kCode:
        spec.messages.push_back({"system", "You are an expert software engineer. Answer with code."});
        if (multi_turn) {
          spec.messages.push_back({"user", "Write a helper that clamps an index into a buffer."});
          spec.messages.push_back({"assistant", make_text(PromptKind::kCode, 40, rng_)});
        }
        spec.messages.push_back({"user", "Review this code and rewrite it with one improvement:\n\n"});
        break;
      case PromptKind::kDigits:
        spec.messages.push_back({"system", "You are a precise calculator. Answer with numbers only."});
        if (multi_turn) {
          spec.messages.push_back({"user", "4821 + 9930 + 1174"});
          spec.messages.push_back({"assistant", "15925"});
        }
        spec.messages.push_back({"user", "Sum each line and list the totals:\n\n"});
        break;
    }
    const int64_t fixed = messages_estimate(spec.messages);
    spec.messages.back().content += make_text(kind, std::max<int64_t>(1, target - fixed), rng_);
    spec.input_tokens_estimate = to_server(config_, kind, messages_estimate(spec.messages));
    spec.max_tokens = config_.output.sample(rng_);
    return spec;
  }
  std::string describe() const override {
    return "synthetic-chat (input " + std::to_string(config_.input.mean) + ", output " +
           std::to_string(config_.output.mean) + ", mix " + mix_.describe() + ")";
  }
  const TrafficMix* mix() const override { return &mix_; }

 private:
  WorkloadConfig config_;
  TrafficMix mix_;
  Rng rng_;
};

// ---- prompt files --------------------------------------------------------------------------

class FileWorkload : public Workload {
 public:
  FileWorkload(const WorkloadConfig& config, std::vector<RequestSpec> entries, int64_t skipped)
      : config_(config), entries_(std::move(entries)), skipped_(skipped) {
    // Seeded shuffle (Fisher-Yates on our own Rng), as vLLM samples ShareGPT with its seed.
    Rng rng = Rng::derived(config.seed, 4);
    for (size_t i = entries_.size(); i > 1; --i) {
      std::swap(entries_[i - 1], entries_[static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(i) - 1))]);
    }
  }
  RequestSpec next(double /*t_s*/) override {
    RequestSpec spec = entries_[next_ % entries_.size()];
    ++next_;
    if (config_.file_output_len) spec.max_tokens = *config_.file_output_len;
    return spec;
  }
  std::string describe() const override {
    return config_.dataset_name + " " + config_.dataset_path + " (" + std::to_string(entries_.size()) + " prompts, " +
           std::to_string(skipped_) + " skipped)";
  }

 private:
  WorkloadConfig config_;
  std::vector<RequestSpec> entries_;
  int64_t skipped_;
  size_t next_ = 0;
};

std::string content_text(const config::JsonValue& content) {
  if (content.is_string()) return content.as_string();
  if (content.is_array()) {  // OpenAI content parts: keep the text parts
    std::string out;
    for (const auto& part : content.items()) {
      if (!part.is_object()) part.fail("must be an object, got " + part.raw());
      auto type = part.find("type");
      if (type && type->as_string() != "text") continue;
      if (!out.empty()) out += "\n";
      out += part["text"].as_string();
    }
    return out;
  }
  content.fail("must be a string or an array of text parts, got " + content.raw());
}

std::string normalise_role(const config::JsonValue& role_value) {
  std::string role = role_value.as_string();
  if (role == "human" || role == "user") return "user";
  if (role == "gpt" || role == "assistant" || role == "bot" || role == "chatgpt" || role == "model") return "assistant";
  if (role == "system") return "system";
  if (role == "tool") return "tool";
  role_value.fail("unknown role \"" + role + "\" (expected human/user, gpt/assistant or system)");
}

}  // namespace

int64_t LengthRange::sample(Rng& rng) const {
  if (range_ratio <= 0) return std::max<int64_t>(1, mean);
  const auto lo = static_cast<int64_t>(std::floor(static_cast<double>(mean) * (1.0 - range_ratio)));
  const auto hi = static_cast<int64_t>(std::floor(static_cast<double>(mean) * (1.0 + range_ratio)));
  return std::max<int64_t>(1, rng.uniform_int(std::max<int64_t>(lo, 1), std::max<int64_t>(hi, 1)));
}

Result<TrafficMix> TrafficMix::parse(std::string_view text, const std::string& field) {
  TrafficMix mix;
  std::string_view rest = trim(text);
  if (rest.empty()) return Error::invalid(field, "is empty; expected phases like \"prose=0.8,code=0.2@60s; code=1\"");
  size_t index = 0;
  while (!rest.empty()) {
    const size_t semi = rest.find(';');
    std::string_view item = trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    const std::string where = field + "[" + std::to_string(index++) + "]";
    Phase phase;
    phase.duration_s = kInfinity;
    const size_t at = item.find('@');
    std::string_view weights = item.substr(0, at);
    if (at != std::string_view::npos) {
      auto schedule = RateSchedule::parse("1@" + std::string(item.substr(at + 1)), where);
      if (!schedule)
        return Error::invalid(where, "duration must be > 0 (suffix ms, s, m or h), got \"" +
                                         std::string(trim(item.substr(at + 1))) + "\"");
      phase.duration_s = schedule->segments()[0].duration_s;
    } else if (!rest.empty()) {
      return Error::invalid(where, "only the last phase may omit its @DURATION");
    }
    double total = 0;
    std::string_view ws = weights;
    while (!ws.empty()) {
      const size_t comma = ws.find(',');
      std::string_view kv = trim(ws.substr(0, comma));
      ws = comma == std::string_view::npos ? std::string_view{} : ws.substr(comma + 1);
      const size_t eq = kv.find('=');
      std::string_view name = trim(kv.substr(0, eq));
      auto kind = parse_prompt_kind(name);
      if (!kind)
        return Error::invalid(where,
                              "unknown prompt kind \"" + std::string(name) + "\" (expected prose, code or digits)");
      double weight = 1.0;
      if (eq != std::string_view::npos) {
        std::string w(trim(kv.substr(eq + 1)));
        char* end = nullptr;
        weight = std::strtod(w.c_str(), &end);
        if (w.empty() || end != w.c_str() + w.size() || !std::isfinite(weight) || weight < 0) {
          return Error::invalid(where, "weight of " + std::string(name) + " must be a number >= 0, got \"" + w + "\"");
        }
      }
      phase.weights.emplace_back(*kind, weight);
      total += weight;
    }
    if (!(total > 0)) return Error::invalid(where, "weights must sum to more than 0");
    for (auto& [kind, w] : phase.weights) w /= total;
    mix.phases_.push_back(std::move(phase));
  }
  return mix;
}

TrafficMix TrafficMix::single(PromptKind kind) {
  TrafficMix mix;
  mix.phases_.push_back(Phase{kInfinity, {{kind, 1.0}}});
  return mix;
}

TrafficMix TrafficMix::uniform() {
  TrafficMix mix;
  mix.phases_.push_back(
      Phase{kInfinity, {{PromptKind::kProse, 1.0 / 3}, {PromptKind::kCode, 1.0 / 3}, {PromptKind::kDigits, 1.0 / 3}}});
  return mix;
}

size_t TrafficMix::phase_index_at(double t_s) const {
  double start = 0;
  for (size_t i = 0; i < phases_.size(); ++i) {
    if (t_s < start + phases_[i].duration_s) return i;
    start += phases_[i].duration_s;
  }
  return phases_.size() - 1;
}

PromptKind TrafficMix::pick(double t_s, Rng& rng) const {
  const Phase& phase = phases_[phase_index_at(t_s)];
  // Always draw, even for a single kind, so that the rest of the random stream does not depend
  // on the mix.
  const double u = rng.uniform01();
  double acc = 0;
  for (const auto& [kind, w] : phase.weights) {
    acc += w;
    if (u < acc) return kind;
  }
  return phase.weights.back().first;
}

std::string TrafficMix::describe() const {
  std::string out;
  for (const auto& phase : phases_) {
    if (!out.empty()) out += "; ";
    bool first = true;
    for (const auto& [kind, w] : phase.weights) {
      if (!first) out += ",";
      first = false;
      out += std::string(prompt_kind_name(kind)) + "=" + format_double(std::round(w * 1000) / 1000);
    }
    if (!std::isinf(phase.duration_s)) out += "@" + format_double(phase.duration_s) + "s";
  }
  return out;
}

namespace {

// Reads one entry; throws ErrorException naming the field path inside the entry.
std::optional<RequestSpec> entry_from_value(const config::JsonValue& root) {
  if (!root.is_object()) root.fail("each entry must be a JSON object, got " + root.raw());
  RequestSpec spec;
  std::optional<int64_t> reply_estimate;
  if (auto prompt = root.find("prompt")) {
    spec.messages.push_back({"user", prompt->as_string()});
    spec.prompt = spec.messages.back().content;
  } else if (auto messages = root.find("messages")) {
    if (!messages->is_array() || messages->size() == 0) messages->fail("must be a non-empty array");
    for (const auto& m : messages->items()) {
      spec.messages.push_back({normalise_role(m["role"]), content_text(m["content"])});
    }
  } else {
    std::optional<config::JsonValue> conv = root.find("conversations");
    if (!conv) conv = root.find("conversation");
    if (!conv) root.fail("needs \"prompt\", \"messages\" or \"conversations\"");
    if (!conv->is_array()) conv->fail("must be an array of turns");
    bool asked = false;
    for (const auto& turn : conv->items()) {
      const config::JsonValue role_v = turn.find("from") ? turn["from"] : turn["role"];
      const config::JsonValue text_v = turn.find("value") ? turn["value"] : turn["content"];
      const std::string role = normalise_role(role_v);
      std::string text = content_text(text_v);
      if (asked) {
        if (role == "assistant") reply_estimate = estimate_tokens(text);
        break;
      }
      spec.messages.push_back({role, std::move(text)});
      if (role == "user") asked = true;
    }
    if (!asked) return std::nullopt;
  }
  bool has_user = false;
  for (const auto& m : spec.messages) has_user = has_user || (m.role == "user" && !m.content.empty());
  if (!has_user) return std::nullopt;
  for (const char* key : {"max_tokens", "max_completion_tokens", "output_len"}) {
    if (auto v = root.find(key)) spec.max_tokens = v->int_in(1, 1 << 24);
  }
  if (spec.max_tokens == 0 && reply_estimate) spec.max_tokens = std::max<int64_t>(1, *reply_estimate);
  if (auto kind = root.find("kind")) spec.kind = kind->as_string();
  if (spec.kind.empty()) spec.kind = "file";
  spec.input_tokens_estimate = messages_estimate(spec.messages);
  return spec;
}

Result<std::optional<RequestSpec>> entry_at(const config::JsonValue& value, const std::string& where) {
  auto entry = capture_errors([&] { return entry_from_value(value); });
  if (!entry) {
    Error e = entry.error();
    e.message = where + ": " + e.message;
    return e;
  }
  return entry;
}

}  // namespace

Result<std::optional<RequestSpec>> parse_prompt_entry(std::string_view json, const std::string& where) {
  auto doc = config::JsonDocument::parse(json, where);
  if (!doc) return doc.error();
  return entry_at(doc->root(), where);
}

Result<std::vector<RequestSpec>> load_prompt_file(const std::string& path, int64_t* num_skipped) {
  auto text = config::read_text_file(path);
  if (!text) return Error::invalid("--dataset-path", text.error().message);
  std::vector<RequestSpec> entries;
  int64_t skipped = 0;
  std::string_view all = trim(*text);
  if (!all.empty() && all.front() == '[') {  // a JSON array (ShareGPT's own file format)
    auto doc = config::JsonDocument::parse(all, path);
    if (!doc) return doc.error();
    auto items = capture_errors([&] { return doc->root().items(); });
    if (!items) return items.error();
    for (size_t i = 0; i < items->size(); ++i) {
      auto entry = entry_at((*items)[i], path);
      if (!entry) return entry.error();
      if (*entry)
        entries.push_back(std::move(**entry));
      else
        ++skipped;
    }
  } else {
    size_t line_no = 0;
    size_t pos = 0;
    const std::string_view whole(*text);
    while (pos < whole.size()) {
      const size_t nl = whole.find('\n', pos);
      const std::string_view line =
          trim(whole.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
      ++line_no;
      pos = nl == std::string_view::npos ? whole.size() : nl + 1;
      if (line.empty()) continue;
      auto entry = parse_prompt_entry(line, path + ":" + std::to_string(line_no));
      if (!entry) return entry.error();
      if (*entry)
        entries.push_back(std::move(**entry));
      else
        ++skipped;
    }
  }
  if (entries.empty()) return Error::invalid("--dataset-path", path + ": no usable prompts");
  if (num_skipped) *num_skipped = skipped;
  return entries;
}

Result<std::unique_ptr<Workload>> Workload::create(const WorkloadConfig& config) {
  auto input_ok = config.input.mean >= 1 && config.output.mean >= 1;
  if (!input_ok) return Error::invalid("--random-input-len", "input and output lengths must be >= 1");
  if (config.input.range_ratio < 0 || config.input.range_ratio >= 1) {
    return Error::invalid("--random-range-ratio", "must be in [0, 1), got " + format_double(config.input.range_ratio));
  }
  const std::string& name = config.dataset_name;
  if (name == "random" || name == "synthetic-chat") {
    TrafficMix mix = name == "random" ? TrafficMix::single(PromptKind::kProse) : TrafficMix::uniform();
    if (!config.traffic_mix.empty()) {
      auto parsed = TrafficMix::parse(config.traffic_mix);
      if (!parsed) return parsed.error();
      mix = std::move(*parsed);
    }
    if (name == "random") return std::unique_ptr<Workload>(new RandomWorkload(config, std::move(mix)));
    return std::unique_ptr<Workload>(new SyntheticChatWorkload(config, std::move(mix)));
  }
  if (name == "jsonl" || name == "sharegpt" || name == "custom") {
    if (config.dataset_path.empty()) return Error::invalid("--dataset-path", "is required for --dataset-name " + name);
    if (!config.traffic_mix.empty())
      return Error::invalid("--traffic-mix", "applies to the random and synthetic-chat datasets only");
    int64_t skipped = 0;
    auto entries = load_prompt_file(config.dataset_path, &skipped);
    if (!entries) return entries.error();
    return std::unique_ptr<Workload>(new FileWorkload(config, std::move(*entries), skipped));
  }
  return Error::invalid("--dataset-name", "must be random, synthetic-chat, jsonl or sharegpt, got \"" + name + "\"");
}

}  // namespace aurora::loadgen
