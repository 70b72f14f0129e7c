// MoE router: softmax over all expert logits (float32), top-k by probability (ties go to the lower
// expert id), then each architecture's normalisation of the chosen weights (none, or divided by
// their sum). The router matrix product itself is a linear().
//
// Contract: rows are independent; no allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

enum class TopKNormalization { kNone, kRenormalize };

struct TopKRoutingParams {
  const float* logits = nullptr;  // [num_tokens, num_experts]
  int32_t* topk_ids = nullptr;    // [num_tokens, top_k], by decreasing weight
  float* topk_weights = nullptr;  // [num_tokens, top_k]
  int32_t num_tokens = 0;
  int32_t num_experts = 0;
  int32_t top_k = 0;
  TopKNormalization normalization = TopKNormalization::kRenormalize;
};

namespace cpu {
void topk_routing(const TopKRoutingParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
