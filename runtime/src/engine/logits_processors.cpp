#include "engine/logits_processors.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace aurora::runtime {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below this temperature the engine samples greedily (engine.cpp's kGreedyTemperature).
constexpr float kGreedyTemperature = 1e-5f;

bool in_range(int32_t id, int32_t vocab_size) { return id >= 0 && id < vocab_size; }

float repetition_penalized(float logit, float penalty) { return logit > 0.0f ? logit / penalty : logit * penalty; }
}  // namespace

void TokenHistory::start(const std::vector<int32_t>& prompt_ids, const SamplingParams& params) {
  prompt_tokens.clear();
  output_counts.clear();
  num_generated = 0;
  if (params.repetition_penalty != 1.0f) {
    prompt_tokens = prompt_ids;
    std::sort(prompt_tokens.begin(), prompt_tokens.end());
    prompt_tokens.erase(std::unique(prompt_tokens.begin(), prompt_tokens.end()), prompt_tokens.end());
  }
}

void TokenHistory::add_generated(int32_t token) {
  ++output_counts[token];
  ++num_generated;
}

bool needs_logits_processing(const SamplingParams& p) {
  return p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f || p.repetition_penalty != 1.0f || p.min_p > 0.0f ||
         p.min_tokens > 0 || !p.logit_bias.empty();
}

void apply_logits_processors(float* row, int32_t vocab_size, const SamplingParams& p, const TokenHistory& history,
                             const std::vector<int32_t>& eos_ids) {
  if (history.num_generated < p.min_tokens) {
    if (!p.ignore_eos) {
      for (int32_t id : eos_ids) {
        if (in_range(id, vocab_size)) row[id] = kNegInf;
      }
    }
    for (int32_t id : p.stop_token_ids) {
      if (in_range(id, vocab_size)) row[id] = kNegInf;
    }
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (in_range(id, vocab_size)) row[id] += bias;
  }
  if (p.repetition_penalty != 1.0f) {
    // Each token seen in the prompt or the output is penalised once.
    for (int32_t id : history.prompt_tokens) {
      if (in_range(id, vocab_size)) row[id] = repetition_penalized(row[id], p.repetition_penalty);
    }
    for (const auto& [id, count] : history.output_counts) {
      (void)count;
      const bool in_prompt = std::binary_search(history.prompt_tokens.begin(), history.prompt_tokens.end(), id);
      if (!in_prompt && in_range(id, vocab_size)) row[id] = repetition_penalized(row[id], p.repetition_penalty);
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    for (const auto& [id, count] : history.output_counts) {
      if (!in_range(id, vocab_size)) continue;
      row[id] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
  if (p.min_p > 0.0f && p.temperature >= kGreedyTemperature) {
    float max_logit = kNegInf;
    for (int32_t i = 0; i < vocab_size; ++i) max_logit = std::max(max_logit, row[i]);
    if (std::isfinite(max_logit)) {
      const float threshold = max_logit + p.temperature * std::log(p.min_p);
      for (int32_t i = 0; i < vocab_size; ++i) {
        if (row[i] < threshold) row[i] = kNegInf;
      }
    }
  }
}

}  // namespace aurora::runtime
