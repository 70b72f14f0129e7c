#include "engine/request_validation.hpp"

#include <cmath>

namespace aurora::runtime {

namespace {
std::string num(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

Result<void> validate_request(const GenerationRequest& r, const ModelInstance& mi) {
  const int32_t vocab = mi.model->config.vocab_size;
  const auto& sp = r.sampling;
  if (r.prompt_ids.empty()) return Error::invalid("prompt", "must not be empty");
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= vocab) {
      return Error::invalid(
          "prompt[" + std::to_string(i) + "]",
          "token id " + std::to_string(r.prompt_ids[i]) + " is out of range [0, " + std::to_string(vocab) + ")");
    }
  }
  if (sp.max_tokens < 1) return Error::invalid("max_tokens", "must be >= 1, got " + std::to_string(sp.max_tokens));
  if (!std::isfinite(sp.temperature) || sp.temperature < 0.0f) {
    return Error::invalid("temperature", "must be >= 0, got " + num(sp.temperature));
  }
  if (!std::isfinite(sp.top_p) || sp.top_p <= 0.0f || sp.top_p > 1.0f) {
    return Error::invalid("top_p", "must be in (0, 1], got " + num(sp.top_p));
  }
  if (sp.top_k < -1) return Error::invalid("top_k", "must be >= 0 (or -1 for off), got " + std::to_string(sp.top_k));
  for (size_t i = 0; i < sp.stop_token_ids.size(); ++i) {
    const int32_t id = sp.stop_token_ids[i];
    if (id < 0 || id >= vocab) {
      return Error::invalid("stop_token_ids[" + std::to_string(i) + "]",
                            "token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab) + ")");
    }
  }
  if (sp.logprobs && (*sp.logprobs < 0 || *sp.logprobs > vocab)) {
    return Error::invalid("logprobs", "must be in [0, " + std::to_string(vocab) + "] (the vocabulary size), got " +
                                          std::to_string(*sp.logprobs));
  }
  auto in_closed = [](float v, float lo, float hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (!in_closed(sp.presence_penalty, -2.0f, 2.0f)) {
    return Error::invalid("presence_penalty", "must be in [-2, 2], got " + num(sp.presence_penalty));
  }
  if (!in_closed(sp.frequency_penalty, -2.0f, 2.0f)) {
    return Error::invalid("frequency_penalty", "must be in [-2, 2], got " + num(sp.frequency_penalty));
  }
  if (!std::isfinite(sp.repetition_penalty) || sp.repetition_penalty <= 0.0f) {
    return Error::invalid("repetition_penalty", "must be > 0, got " + num(sp.repetition_penalty));
  }
  if (!in_closed(sp.min_p, 0.0f, 1.0f)) return Error::invalid("min_p", "must be in [0, 1], got " + num(sp.min_p));
  if (sp.min_tokens < 0) return Error::invalid("min_tokens", "must be >= 0, got " + std::to_string(sp.min_tokens));
  if (sp.min_tokens > sp.max_tokens) {
    return Error::invalid("min_tokens", "must be <= max_tokens (" + std::to_string(sp.max_tokens) + "), got " +
                                            std::to_string(sp.min_tokens));
  }
  for (const auto& [id, bias] : sp.logit_bias) {
    const std::string field = "logit_bias." + std::to_string(id);
    if (id < 0 || id >= vocab) {
      return Error::invalid(field,
                            "token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab) + ")");
    }
    if (!in_closed(bias, -100.0f, 100.0f)) return Error::invalid(field, "must be in [-100, 100], got " + num(bias));
  }
  const int64_t need = static_cast<int64_t>(r.prompt_ids.size()) + sp.max_tokens;
  if (need > mi.max_context) {
    return Error::invalid("max_tokens", "the prompt (" + std::to_string(r.prompt_ids.size()) +
                                            " tokens) plus max_tokens (" + std::to_string(sp.max_tokens) +
                                            ") = " + std::to_string(need) + " tokens exceed the context of model " +
                                            mi.name + " (" + std::to_string(mi.max_context) + " tokens)");
  }
  return {};
}

}  // namespace aurora::runtime
