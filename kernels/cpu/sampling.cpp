#include "aurora/kernels/sampling.hpp"

#include <algorithm>
#include <cmath>

#include "aurora/kernels/kernel_check.hpp"

namespace aurora::kernels::cpu {
namespace {

int32_t argmax(const float* logits, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

int32_t sample_row(const float* logits, int32_t vocab, const SamplingRow& row, float* values, int32_t* ids) {
  if (row.temperature <= 0.0f) return argmax(logits, vocab);
  const float inv_t = 1.0f / row.temperature;
  for (int32_t i = 0; i < vocab; ++i) {
    values[i] = logits[i] * inv_t;
    ids[i] = i;
  }
  // Candidates: indices into values[]; ranked by (value desc, id asc).
  auto before = [&](int32_t a, int32_t b) { return values[a] > values[b] || (values[a] == values[b] && a < b); };
  int32_t count = vocab;
  const bool use_top_k = row.top_k > 0 && row.top_k < vocab;
  const bool use_top_p = row.top_p < 1.0f;
  if (use_top_k) {
    std::nth_element(ids, ids + row.top_k, ids + vocab, before);
    count = row.top_k;
  }
  if (use_top_p) std::sort(ids, ids + count, before);
  float max_value = -INFINITY;
  for (int32_t c = 0; c < count; ++c) max_value = std::max(max_value, values[ids[c]]);
  // Turn values into unnormalised probabilities (in place; ids still index them).
  float total = 0.0f;
  for (int32_t c = 0; c < count; ++c) {
    float& v = values[ids[c]];
    v = std::exp(v - max_value);
    total += v;
  }
  if (use_top_p) {
    const float target = row.top_p * total;
    float mass = 0.0f;
    int32_t keep = 0;
    while (keep < count) {
      mass += values[ids[keep]];
      ++keep;
      if (mass >= target) break;
    }
    count = keep;
    total = mass;
  }
  // Walk the kept set in id order: the result does not depend on nth_element's layout, and the GPU
  // twin (which finds the kept set by thresholds, never sorting it) walks the same way.
  if (use_top_k || use_top_p) std::sort(ids, ids + count);
  const float target = row.uniform * total;
  float cumulative = 0.0f;
  for (int32_t c = 0; c < count; ++c) {
    cumulative += values[ids[c]];
    if (cumulative > target) return ids[c];
  }
  return ids[count - 1];  // rounding: uniform close to 1
}

}  // namespace

void sample(const SampleParams& p, void* workspace, size_t workspace_bytes) {
  AURORA_KERNEL_CHECK(workspace_bytes >= sampling_workspace_bytes(p.vocab_size), "sampling workspace too small");
  float* values = static_cast<float*>(workspace);
  int32_t* ids = reinterpret_cast<int32_t*>(values + p.vocab_size);
  const int64_t stride = p.logits_stride ? p.logits_stride : p.vocab_size;
  for (int32_t r = 0; r < p.num_rows; ++r) {
    p.out_tokens[r] = sample_row(p.logits + r * stride, p.vocab_size, p.rows[r], values, ids);
  }
}

}  // namespace aurora::kernels::cpu
