// Rotary position embedding in Hugging Face's rotate_half convention: for each head,
// x' = x * cos + rotate_half(x) * sin, with rotate_half(x) = [-x2, x1] over the two halves of the
// head and angle(i, pos) = float(pos) * inv_freq[i] computed in float32, as transformers does.
//
// Contract: q and k are rotated in place; tokens are independent. RoPE scaling (e.g. linear) is
// folded into inv_freq by the caller. No allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct RopeParams {
  float* q = nullptr;                  // [num_tokens, num_q_heads, head_dim]
  float* k = nullptr;                  // [num_tokens, num_kv_heads, head_dim]
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [head_dim / 2]
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};

namespace cpu {
void rope(const RopeParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
