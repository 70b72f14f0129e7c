// One token's routing by one warp (softmax, top-k, renormalisation), shared by the router kernels
// (moe.cu) and the experts' gate_up GEMV that routes for itself (gemv.cu), so that both choose the
// same experts from the same logits.
#pragma once

#include <cstdint>

#include "aurora/kernels/cuda/moe.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda::detail {

// Softmax over one token's logits, top-k (ties to the lower id), optional renormalisation; one warp.
// probs: this warp's shared scratch of num_experts floats.
// kShared: logits in shared memory (else global, written by other blocks of the launch).
// Short code on purpose: the routing warp runs it once per launch, from a cold instruction cache.
template <bool kShared = false>
__device__ void route_token(const float* logits, int32_t num_experts, int32_t top_k, bool renormalize, float* probs,
                            int32_t* ids, float* weights, int32_t* ids_copy = nullptr) {
  const int lane = threadIdx.x & 31;
  // The logits into probs, kLoads per lane at a time: one round trip for <= 32 * kLoads experts.
  constexpr int kLoads = 8;
  float m = -INFINITY;
#pragma unroll 1
  for (int32_t e0 = lane; e0 < num_experts; e0 += 32 * kLoads) {
    float v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int32_t e = e0 + 32 * u;
      v[u] = e < num_experts ? (kShared ? logits[e] : __ldcg(logits + e)) : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      m = fmaxf(m, v[u]);
      if (e0 + 32 * u < num_experts) probs[e0 + 32 * u] = v[u];
    }
  }
  m = detail::warp_max(m);
  float s = 0.0f;
  for (int32_t e = lane; e < num_experts; e += 32) {
    const float v = expf(probs[e] - m);
    probs[e] = v;
    s += v;
  }
  s = detail::warp_sum(s);
  for (int32_t e = lane; e < num_experts; e += 32) probs[e] = probs[e] / s;
  __syncwarp();
  float chosen_sum = 0.0f;
  float chosen[kMaxTopK];
  int32_t chosen_id[kMaxTopK];
#pragma unroll 1
  for (int j = 0; j < kMaxTopK; ++j) {
    if (j >= top_k) break;
    float best = -INFINITY;
    int32_t best_id = 0x7fffffff;
    for (int32_t e = lane; e < num_experts; e += 32) {
      const float v = probs[e];
      if (v > best) {  // lane-strided ids ascend, so ties keep the lower id
        best = v;
        best_id = e;
      }
    }
    // The warp's largest probability, then the lowest id holding it: two warp reductions (redux)
    // instead of five rounds of two dependent shuffles. Probabilities are >= 0, where the float
    // order is the order of the bits as unsigned integers; a lane without candidates (-inf: all
    // chosen) offers 0 with id INT_MAX, so the same expert wins as by comparing the floats.
    const uint32_t key = best >= 0.0f ? __float_as_uint(best) : 0u;
    const uint32_t top = __reduce_max_sync(0xffffffffu, key);
    best_id =
        static_cast<int32_t>(__reduce_min_sync(0xffffffffu, key == top ? static_cast<uint32_t>(best_id) : 0x7fffffffu));
    best = __uint_as_float(top);
    chosen[j] = best;
    chosen_id[j] = best_id;
    chosen_sum += best;
    if ((best_id & 31) == lane) probs[best_id] = -INFINITY;  // its owner: no other lane reads it
  }
  if (lane == 0) {
#pragma unroll 1
    for (int j = 0; j < kMaxTopK; ++j) {
      if (j < top_k) {
        ids[j] = chosen_id[j];
        if (ids_copy) ids_copy[j] = chosen_id[j];
        weights[j] = renormalize ? chosen[j] / chosen_sum : chosen[j];
      }
    }
  }
}

}  // namespace aurora::kernels::cuda::detail
