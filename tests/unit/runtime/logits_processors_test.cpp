// The host logits processors (min_tokens, logit_bias, repetition / frequency / presence penalties,
// min_p) on small rows against values computed by hand, one field at a time and combined.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "engine/logits_processors.hpp"

using namespace aurora::runtime;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// History of a sequence with `prompt` that has generated `generated`.
TokenHistory history_of(const std::vector<int32_t>& prompt, const std::vector<int32_t>& generated,
                        const SamplingParams& p) {
  TokenHistory h;
  h.start(prompt, p);
  for (int32_t t : generated) h.add_generated(t);
  return h;
}

std::vector<float> processed(std::vector<float> row, const SamplingParams& p, const TokenHistory& h,
                             const std::vector<int32_t>& eos = {}) {
  apply_logits_processors(row.data(), int32_t(row.size()), p, h, eos);
  return row;
}

void check_row(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("token " << i);
    if (std::isinf(want[i])) {
      CHECK(got[i] == want[i]);
    } else {
      CHECK(got[i] == Approx(want[i]).margin(1e-6));
    }
  }
}

}  // namespace

TEST_CASE("neutral parameters need no processing and change nothing", "[penalties]") {
  SamplingParams p;
  CHECK_FALSE(needs_logits_processing(p));
  const std::vector<float> row = {1.0f, -2.0f, 0.5f};
  check_row(processed(row, p, history_of({0, 1}, {2, 2}, p)), row);
  for (auto set : std::vector<void (*)(SamplingParams&)>{
           [](SamplingParams& s) { s.presence_penalty = 0.1f; }, [](SamplingParams& s) { s.frequency_penalty = -0.1f; },
           [](SamplingParams& s) { s.repetition_penalty = 1.1f; }, [](SamplingParams& s) { s.min_p = 0.05f; },
           [](SamplingParams& s) { s.min_tokens = 1; },
           [](SamplingParams& s) {
             s.logit_bias = {{0, 1.0f}};
           }}) {
    SamplingParams q;
    set(q);
    CHECK(needs_logits_processing(q));
  }
}

TEST_CASE("frequency and presence penalties count generated tokens only", "[penalties]") {
  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  // Prompt holds token 0 (not penalised); token 1 generated 3 times, token 3 once.
  const auto h = history_of({0, 0}, {1, 3, 1, 1}, p);
  check_row(processed({2.0f, 2.0f, 2.0f, -1.0f}, p, h), {2.0f, 2.0f - 1.5f - 0.25f, 2.0f, -1.0f - 0.5f - 0.25f});
  // Negative values reward repeats.
  p.frequency_penalty = -1.0f;
  p.presence_penalty = 0.0f;
  check_row(processed({0.0f, 0.0f, 0.0f, 0.0f}, p, h), {0.0f, 3.0f, 0.0f, 1.0f});
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits of prompt and output tokens",
          "[penalties]") {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  // Prompt {0, 2, 2}, output {2, 3, 3}: tokens 0, 2, 3 are penalised once each, 1 and 4 not.
  const auto h = history_of({0, 2, 2}, {2, 3, 3}, p);
  check_row(processed({4.0f, 4.0f, -3.0f, 0.0f, -1.0f}, p, h), {2.0f, 4.0f, -6.0f, 0.0f, -1.0f});
  p.repetition_penalty = 0.5f;  // < 1 favours repeats
  check_row(processed({4.0f, 4.0f, -3.0f, 1.0f, -1.0f}, p, h), {8.0f, 4.0f, -1.5f, 2.0f, -1.0f});
}

TEST_CASE("logit_bias adds to the named tokens", "[penalties]") {
  SamplingParams p;
  p.logit_bias = {{2, 100.0f}, {0, -5.5f}};
  check_row(processed({1.0f, 1.0f, 1.0f}, p, history_of({1}, {}, p)), {-4.5f, 1.0f, 101.0f});
}

TEST_CASE("min_tokens rules out EOS and stop_token_ids until enough tokens are generated", "[penalties]") {
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {1};
  const std::vector<int32_t> eos = {3};
  check_row(processed({1.0f, 1.0f, 1.0f, 1.0f}, p, history_of({0}, {0}, p), eos), {1.0f, -kInf, 1.0f, -kInf});
  // Two tokens generated: nothing is held back any more.
  check_row(processed({1.0f, 1.0f, 1.0f, 1.0f}, p, history_of({0}, {0, 2}, p), eos), {1.0f, 1.0f, 1.0f, 1.0f});
  // ignore_eos: EOS is an ordinary token, stop_token_ids are still held back.
  p.ignore_eos = true;
  check_row(processed({1.0f, 1.0f, 1.0f, 1.0f}, p, history_of({0}, {}, p), eos), {1.0f, -kInf, 1.0f, 1.0f});
}

TEST_CASE("min_p drops tokens below min_p times the top probability after temperature", "[penalties]") {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.1f;
  // p_i / p_max = exp(l_i - l_max): 1, e^-1 = 0.37, e^-2.2 = 0.11, e^-2.4 = 0.09, e^-5 -> kept, kept, kept, dropped,
  // dropped.
  const std::vector<float> row = {3.0f, 2.0f, 0.8f, 0.6f, -2.0f};
  check_row(processed(row, p, history_of({0}, {}, p)), {3.0f, 2.0f, 0.8f, -kInf, -kInf});
  // Temperature 2 flattens: ratio exp((l_i - l_max) / 2): 0.61, 0.33, 0.30, 0.0067.
  p.temperature = 2.0f;
  check_row(processed(row, p, history_of({0}, {}, p)), {3.0f, 2.0f, 0.8f, 0.6f, -kInf});
  // Greedy rows: argmax-invariant, left alone.
  p.temperature = 0.0f;
  check_row(processed(row, p, history_of({0}, {}, p)), row);
  // min_p = 1 keeps only the most likely token(s).
  p.temperature = 0.7f;
  p.min_p = 1.0f;
  check_row(processed({1.0f, 5.0f, 5.0f}, p, history_of({0}, {}, p)), {-kInf, 5.0f, 5.0f});
}

TEST_CASE("processors combine in vLLM's order: min_tokens, logit_bias, repetition, frequency/presence, min_p",
          "[penalties]") {
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_tokens = 5;
  p.stop_token_ids = {4};
  p.logit_bias = {{0, 3.0f}, {1, -2.0f}, {4, 100.0f}};
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  p.min_p = 0.01f;  // ln(0.01) = -4.605
  // prompt {1}, output {0, 0, 2}.
  const auto h = history_of({1}, {0, 0, 2}, p);
  // token 0: (1 + 3) / 2 - 2 * 1 - 0.5 = -0.5   (bias before the repetition penalty)
  // token 1: (1 - 2) * 2 = -2                   (bias turned it negative: multiplied)
  // token 2: 4 / 2 - 1 - 0.5 = 0.5
  // token 3: 1 (untouched; max is 1, threshold 1 - 4.605 = -3.605)
  // token 4: stop token before min_tokens: -inf whatever the bias
  // token 5: -4 < -3.605: dropped by min_p
  check_row(processed({1.0f, 1.0f, 4.0f, 1.0f, 1.0f, -4.0f}, p, h), {-0.5f, -2.0f, 0.5f, 1.0f, -kInf, -kInf});
}
