// One element of the MoE combine, shared by the combine kernels (moe.cu) and the fused expert FFN's
// combine (gemv.cu), so that they give the same bits.
#pragma once

#include <cstdint>

#include "aurora/kernels/cuda/moe.hpp"

namespace aurora::kernels::cuda::detail {

// order[0 .. top_k) = a token's choices 0 .. top_k - 1 sorted by expert id (stable insertion sort,
// by the calling thread; top_k <= kMaxTopK): the order the combine adds them in.
__device__ __forceinline__ void sort_by_expert(const int32_t* ids, int32_t top_k, int32_t* order) {
  for (int32_t j = 0; j < top_k; ++j) order[j] = j;
  for (int32_t a = 1; a < top_k; ++a) {
    const int32_t v = order[a];
    int32_t b = a - 1;
    while (b >= 0 && ids[order[b]] > ids[v]) {
      order[b + 1] = order[b];
      --b;
    }
    order[b + 1] = v;
  }
}

// x + the sum, over a token's choices in increasing expert id order, of weight * expert output, plus
// the gated shared expert's output when `shared`: v[n], w[n] are the n-th choice in that order.
// Explicit roundings (no contraction left to the compiler).
__device__ __forceinline__ float moe_combine_value(float xh, const float (&v)[kMaxTopK], const float* w, int32_t top_k,
                                                   bool shared, float gate, float sh) {
  float acc = 0.0f;
#pragma unroll
  for (int n = 0; n < kMaxTopK; ++n) {
    if (n < top_k) acc = __fmaf_rn(v[n], w[n], acc);
  }
  if (shared) acc = __fmaf_rn(gate, sh, acc);
  return __fadd_rn(xh, acc);
}

}  // namespace aurora::kernels::cuda::detail
