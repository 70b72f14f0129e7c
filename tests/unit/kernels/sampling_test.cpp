#include <catch2/catch.hpp>
#include <map>

#include "aurora/kernels/sampling.hpp"
#include "kernel_test_support.hpp"

using namespace aurora::kernels;
using namespace aurora::kernels::test;

namespace {
int32_t sample_one(const std::vector<float>& logits, SamplingRow row) {
  std::vector<unsigned char> ws(cpu::sampling_workspace_bytes(int32_t(logits.size())));
  int32_t out = -1;
  cpu::sample(SampleParams{logits.data(), &row, &out, 1, int32_t(logits.size()), 0}, ws.data(), ws.size());
  return out;
}
}  // namespace

TEST_CASE("greedy sampling is argmax with ties to the lower id", "[kernels][sampling]") {
  CHECK(sample_one({0.1f, 3.0f, -1.0f, 3.0f}, SamplingRow{0.0f, 1.0f, 0, 0.9f}) == 1);
}

TEST_CASE("top_k = 1 is greedy whatever the uniform", "[kernels][sampling]") {
  std::vector<float> logits = {0.5f, 0.1f, 2.0f, 1.9f};
  for (float u : {0.0f, 0.3f, 0.999f}) CHECK(sample_one(logits, SamplingRow{1.0f, 1.0f, 1, u}) == 2);
}

TEST_CASE("top_p keeps the smallest nucleus", "[kernels][sampling]") {
  // probabilities ~ [0.643, 0.237, 0.087, 0.032]
  std::vector<float> logits = {3.0f, 2.0f, 1.0f, 0.0f};
  for (float u : {0.0f, 0.5f, 0.99f}) {
    int32_t t = sample_one(logits, SamplingRow{1.0f, 0.6f, 0, u});
    CHECK(t == 0);  // 0.643 >= 0.6: the nucleus is token 0 alone
  }
  std::map<int32_t, int> seen;
  for (int i = 0; i < 100; ++i) seen[sample_one(logits, SamplingRow{1.0f, 0.85f, 0, i / 100.0f})]++;
  CHECK(seen.size() == 2);  // tokens 0 and 1
  CHECK(seen[0] > seen[1]);
}

TEST_CASE("sampling follows the softmax distribution", "[kernels][sampling]") {
  std::vector<float> logits = {std::log(0.1f), std::log(0.2f), std::log(0.7f)};
  std::map<int32_t, int> counts;
  const int n = 1000;
  for (int i = 0; i < n; ++i) counts[sample_one(logits, SamplingRow{1.0f, 1.0f, 0, (i + 0.5f) / n})]++;
  CHECK(std::abs(counts[0] - 100) <= 2);
  CHECK(std::abs(counts[1] - 200) <= 2);
  CHECK(std::abs(counts[2] - 700) <= 2);
}

TEST_CASE("low temperature sharpens towards the argmax", "[kernels][sampling]") {
  std::vector<float> logits = {1.0f, 1.2f, 0.9f};
  int hits = 0;
  for (int i = 0; i < 100; ++i) hits += sample_one(logits, SamplingRow{0.01f, 1.0f, 0, (i + 0.5f) / 100.0f}) == 1;
  CHECK(hits == 100);
}
