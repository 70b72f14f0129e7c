// One warp computes one head of a token's attention prologue (bias, q/k norm, clamp, RoPE).
// Contract: qkv_head_warp() is the one arithmetic every kernel uses for q and for the KV rows it
// writes (the prologue kernel at any batch size, and decode attention with the prologue folded in),
// so a row's q, k and v have the same bits whatever kernel, batch or grid produced them. Called by
// all 32 lanes of a warp; leaves the head_dim results in `ws` (shared memory) after a __syncwarp.
#pragma once

#include "aurora/kernels/cuda/norm_rope.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda::detail {

constexpr int kQkvHeadMaxDim = 256;

__device__ __forceinline__ float warp_sum_rn(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// kind: 0 = q, 1 = k, 2 = v; hh: the head within its kind; t: the token's row of p.qkv.
__device__ __forceinline__ void qkv_head_warp(const QkvPrologueParams& p, int32_t t, int kind, int32_t hh, float* ws) {
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t hd = p.head_dim, half = hd / 2;
  const int32_t q_dim = p.num_q_heads * hd, kv_dim = p.num_kv_heads * hd;
  const int32_t region = kind == 0 ? 0 : kind == 1 ? q_dim : q_dim + kv_dim;
  const int32_t col = region + hh * hd;
  const float* src = p.qkv + int64_t{t} * (q_dim + 2 * kv_dim);
  auto in = [&](int32_t i) { return p.bias ? __fadd_rn(src[i], p.bias[i]) : src[i]; };
  constexpr int kPer = kQkvHeadMaxDim / 32;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int32_t i = lane + 32 * j;
    v[j] = i < hd ? in(col + i) : 0.0f;
  }
  if (kind < 2 && p.qk_norm != QkNormMode::kNone) {
    const bool full = p.qk_norm == QkNormMode::kFull;
    const int32_t len = full ? (kind == 0 ? q_dim : kv_dim) : hd;
    float ss = 0.0f;
    if (full) {
      // Unrolled so that a lane's loads (64 for OLMoE's 2048-wide q and k) are in flight before its
      // products, the same chain of fmas: a round trip to L2 per few elements cost OLMoE's prologue
      // ~5 us per layer (H200, 2026-11-29: 7.2-7.4 us, 5.9 with 16 loads in flight).
#pragma unroll 64
      for (int32_t i = lane; i < len; i += 32) {
        const float r = in(region + i);
        ss = __fmaf_rn(r, r, ss);
      }
    } else {
#pragma unroll
      for (int j = 0; j < kPer; ++j) ss = __fmaf_rn(v[j], v[j], ss);  // zeros beyond head_dim
    }
    ss = warp_sum_rn(ss);
    const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, static_cast<float>(len)), p.eps)));
    const float* w = (kind == 0 ? p.q_norm : p.k_norm) + (full ? int64_t{hh} * hd : 0);
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int32_t i = lane + 32 * j;
      if (i < hd) v[j] = __fmul_rn(w[i], __fmul_rn(v[j], inv));
    }
  }
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int32_t i = lane + 32 * j;
    if (i < hd) ws[i] = p.clip > 0.0f ? fminf(fmaxf(v[j], -p.clip), p.clip) : v[j];
  }
  __syncwarp();
  if (kind == 2) return;
  const float pos = static_cast<float>(p.positions[t]);
  for (int32_t i = lane; i < half; i += 32) {
    float s, c;
    sincosf(__fmul_rn(pos, p.inv_freq[i]), &s, &c);
    const float x1 = ws[i], x2 = ws[i + half];
    ws[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    ws[i + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
  }
  __syncwarp();
}

}  // namespace aurora::kernels::cuda::detail
