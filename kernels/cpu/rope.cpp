#include "aurora/kernels/rope.hpp"

#include <cmath>

#include "aurora/kernels/kernel_check.hpp"

namespace aurora::kernels::cpu {
namespace {

void rotate_heads(float* x, int32_t num_heads, int32_t head_dim, const float* cos_v, const float* sin_v) {
  const int32_t half = head_dim / 2;
  for (int32_t h = 0; h < num_heads; ++h) {
    float* v = x + int64_t{h} * head_dim;
    for (int32_t i = 0; i < half; ++i) {
      const float x1 = v[i];
      const float x2 = v[i + half];
      v[i] = x1 * cos_v[i] - x2 * sin_v[i];
      v[i + half] = x2 * cos_v[i] + x1 * sin_v[i];
    }
  }
}

}  // namespace

void rope(const RopeParams& p) {
  constexpr int32_t kMaxHalf = 512;
  AURORA_KERNEL_CHECK(p.head_dim % 2 == 0 && p.head_dim / 2 <= kMaxHalf, "");
  const int32_t half = p.head_dim / 2;
  float cos_v[kMaxHalf];
  float sin_v[kMaxHalf];
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (int32_t i = 0; i < half; ++i) {
      const float angle = pos * p.inv_freq[i];  // float32 product, as transformers computes it
      cos_v[i] = std::cos(angle);
      sin_v[i] = std::sin(angle);
    }
    if (p.q) rotate_heads(p.q + int64_t{t} * p.num_q_heads * p.head_dim, p.num_q_heads, p.head_dim, cos_v, sin_v);
    if (p.k) rotate_heads(p.k + int64_t{t} * p.num_kv_heads * p.head_dim, p.num_kv_heads, p.head_dim, cos_v, sin_v);
  }
}

}  // namespace aurora::kernels::cpu
