// Token sampling from logits: greedy (temperature 0: argmax, ties to the lower id) or
// temperature + top-k + top-p (nucleus) sampling driven by one caller-supplied uniform number per
// row, so that a request's randomness comes from its own seeded stream and not from the batch.
//
// Order of filters (as vLLM): logits / temperature, keep the top_k largest, softmax, keep the
// smallest prefix (by decreasing probability, ties to the lower id) whose mass reaches top_p,
// renormalise, then invert the CDF at `uniform`, walking the kept tokens in increasing id order. Contract: rows are
// independent; the caller passes a workspace of sampling_workspace_bytes() bytes; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aurora::kernels {

struct SamplingRow {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int32_t top_k = 0;         // 0 = off
  float uniform = 0.0f;      // in [0, 1)
};

struct SampleParams {
  const float* logits = nullptr;      // [num_rows, vocab_size] (row stride = logits_stride or vocab)
  const SamplingRow* rows = nullptr;  // [num_rows]
  int32_t* out_tokens = nullptr;      // [num_rows]
  int32_t num_rows = 0;
  int32_t vocab_size = 0;
  int64_t logits_stride = 0;  // 0 = vocab_size
};

namespace cpu {
inline size_t sampling_workspace_bytes(int32_t vocab_size) {
  return static_cast<size_t>(vocab_size) * (sizeof(float) + sizeof(int32_t));
}
void sample(const SampleParams& params, void* workspace, size_t workspace_bytes);
}  // namespace cpu

}  // namespace aurora::kernels
