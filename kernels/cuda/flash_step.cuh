// One step of flash attention on tensor cores, shared by the prefill kernel (attention_prefill.cu:
// rows = a tile's query positions) and the decode kernel (attention_decode.cu: rows = a kv head's
// query heads): S = Q K^T over a step's keys, the online softmax in base 2, O += P V. A warp holds
// 16 rows; lane (g = lane / 4, q4 = lane % 4) holds rows g and g + 8 of the mma accumulators
// (s[.][0..1] and s[.][2..3], columns 2 q4 and 2 q4 + 1 of each 8-key tile).
#pragma once

#include <cstdint>

#include "mma.cuh"

namespace aurora::kernels::cuda::detail {

// s[nt] = Q K^T for keys nt * 8 .. nt * 8 + 7 of the step: qf the rows' A fragments per 16 dims; sk
// the step's K rows ([key][dim], `row` elements apart) in shared memory.
template <int HD, int NT>
__device__ __forceinline__ void flash_scores(float (&s)[NT][4], const uint32_t (&qf)[HD / 16][4], const bf16* sk,
                                             int row, int lane) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks += 2) {
      uint32_t b0, b1, b2, b3;  // keys nt*8.., dims ks*16 + {0, 8, 16, 24}
      ldmatrix_x4(smem_addr(sk + (nt * 8 + (lane & 7)) * row + ks * 16 + (lane >> 3) * 8), b0, b1, b2, b3);
      mma_16816(s[nt], qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3], b0, b1);
      mma_16816(s[nt], qf[ks + 1][0], qf[ks + 1][1], qf[ks + 1][2], qf[ks + 1][3], b2, b3);
    }
  }
}

// The online softmax over one step: s holds its scaled scores in base 2 (masked ones -inf). Updates
// the rows' running max (m0, m1) and this lane's partial sums (l0, l1), rescales o, and leaves the
// step's probabilities in s.
template <int NT, int OD>
__device__ __forceinline__ void flash_softmax(float (&s)[NT][4], float& m0, float& m1, float& l0, float& l1,
                                              float (&o)[OD][4]) {
  float mx0 = m0, mx1 = m1;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
    mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  // A row with no key seen yet keeps -inf: its reference is 0 so that exp2 gives 0, not NaN.
  const float ref0 = mx0 == -INFINITY ? 0.0f : mx0, ref1 = mx1 == -INFINITY ? 0.0f : mx1;
  const float alpha0 = exp2f(m0 - ref0), alpha1 = exp2f(m1 - ref1);
  m0 = mx0;
  m1 = mx1;
  l0 *= alpha0;
  l1 *= alpha1;
#pragma unroll
  for (int i = 0; i < OD; ++i) {
    o[i][0] *= alpha0;
    o[i][1] *= alpha0;
    o[i][2] *= alpha1;
    o[i][3] *= alpha1;
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    s[nt][0] = exp2f(s[nt][0] - ref0);
    s[nt][1] = exp2f(s[nt][1] - ref0);
    s[nt][2] = exp2f(s[nt][2] - ref1);
    s[nt][3] = exp2f(s[nt][3] - ref1);
    l0 += s[nt][0] + s[nt][1];
    l1 += s[nt][2] + s[nt][3];
  }
}

// O += P V for keys kk * 16 .. kk * 16 + 15 of the step: P's accumulators (s[2 kk], s[2 kk + 1]) are
// the A fragment; V's B fragments come transposed from its [key][dim] rows (sv, `row` apart).
template <int HD, int NT>
__device__ __forceinline__ void flash_pv(float (&o)[HD / 8][4], const float (&s)[NT][4], int kk, const bf16* sv,
                                         int row, int lane) {
  const uint32_t a0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]), a1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
  const uint32_t a2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), a3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
  const int m = lane >> 3;
#pragma unroll
  for (int dt = 0; dt < HD / 8; dt += 2) {
    uint32_t b0, b1, b2, b3;  // keys kk*16 + {0, 8}, dims dt*8 and (dt + 1)*8
    ldmatrix_x4_trans(smem_addr(sv + (kk * 16 + (m & 1) * 8 + (lane & 7)) * row + (dt + (m >> 1)) * 8), b0, b1, b2, b3);
    mma_16816(o[dt], a0, a1, a2, a3, b0, b1);
    mma_16816(o[dt + 1], a0, a1, a2, a3, b2, b3);
  }
}

// The merge of n online-softmax states (max m_i, output o_i, sum l_i; base 2), in order i = 0 .. n - 1:
// returns M = max m_i and calls add(i, a) with a = 2^(m_i - M) for each i in order, for the caller to
// sum a o_i and a l_i (the output is their quotient); a state with m_i = -inf (no keys) gets a = 0.
// N > 0: n <= N, the loops unrolled and the maxima kept in registers; N = 0: any n, the maxima read
// again. The decode kernel merges its warps (N = 4), a cluster's ranges (N = 16) and the workspace's
// ranges (N = 0) with it.
template <int N, class MaxOf, class Add>
__device__ __forceinline__ float merge_softmax_states(int n, const MaxOf& max_of, const Add& add) {
  float mx = -INFINITY;
  if constexpr (N > 0) {
    float m[N];
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if (i < n) {
        m[i] = max_of(i);
        mx = fmaxf(mx, m[i]);
      }
    }
#pragma unroll
    for (int i = 0; i < N; ++i) {
      if (i < n) add(i, m[i] == -INFINITY ? 0.0f : exp2f(m[i] - mx));
    }
  } else {
    for (int i = 0; i < n; ++i) mx = fmaxf(mx, max_of(i));
    for (int i = 0; i < n; ++i) {
      const float m = max_of(i);
      add(i, m == -INFINITY ? 0.0f : exp2f(m - mx));
    }
  }
  return mx;
}

}  // namespace aurora::kernels::cuda::detail
