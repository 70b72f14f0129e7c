#include "aurora/kernels/moe_routing.hpp"

#include <cmath>

#include "aurora/kernels/kernel_check.hpp"

namespace aurora::kernels::cpu {

void topk_routing(const TopKRoutingParams& p) {
  constexpr int32_t kMaxExperts = 4096;
  AURORA_KERNEL_CHECK(p.num_experts <= kMaxExperts && p.top_k >= 1 && p.top_k <= p.num_experts, "");
  float probs[kMaxExperts];
  bool taken[kMaxExperts];
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const float* logits = p.logits + int64_t{t} * p.num_experts;
    float max_logit = logits[0];
    for (int32_t e = 1; e < p.num_experts; ++e) max_logit = std::max(max_logit, logits[e]);
    float sum = 0.0f;
    for (int32_t e = 0; e < p.num_experts; ++e) {
      probs[e] = std::exp(logits[e] - max_logit);
      sum += probs[e];
      taken[e] = false;
    }
    for (int32_t e = 0; e < p.num_experts; ++e) probs[e] /= sum;
    int32_t* ids = p.topk_ids + int64_t{t} * p.top_k;
    float* weights = p.topk_weights + int64_t{t} * p.top_k;
    float chosen_sum = 0.0f;
    for (int32_t j = 0; j < p.top_k; ++j) {
      int32_t best = -1;
      for (int32_t e = 0; e < p.num_experts; ++e) {
        if (!taken[e] && (best < 0 || probs[e] > probs[best])) best = e;
      }
      taken[best] = true;
      ids[j] = best;
      weights[j] = probs[best];
      chosen_sum += probs[best];
    }
    if (p.normalization == TopKNormalization::kRenormalize) {
      for (int32_t j = 0; j < p.top_k; ++j) weights[j] /= chosen_sum;
    }
  }
}

}  // namespace aurora::kernels::cpu
