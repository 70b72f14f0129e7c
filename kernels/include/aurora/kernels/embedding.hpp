// Token embedding lookup: out[t] = table[ids[t]].
// Contract: ids must be in [0, vocab_size) (checked by the caller at submit); no allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct EmbeddingParams {
  const int32_t* ids = nullptr;  // [num_tokens]
  const float* table = nullptr;  // [vocab_size, hidden]
  float* out = nullptr;          // [num_tokens, hidden]
  int32_t num_tokens = 0;
  int32_t hidden = 0;
  int32_t vocab_size = 0;
};

namespace cpu {
void embedding(const EmbeddingParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
