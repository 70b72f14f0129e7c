// One element of the MoE combine, shared by the combine kernels (moe.cu) and the fused expert FFN's
// combine (gemv.cu), so that they give the same bits.
#pragma once

#include <cstdint>

#include "aurora/kernels/cuda/moe.hpp"

namespace aurora::kernels::cuda::detail {

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
