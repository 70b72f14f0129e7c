// RMSNorm, RoPE and the fused attention prologue (bias, q/k norm, clamp, RoPE, KV-cache write).
#include "aurora/kernels/cuda/norm_rope.hpp"

#include <cstdlib>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "qkv_head.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kNormThreads = 1024;  // one row per block: many loads in flight for one token

__global__ void rms_norm_kernel(RmsNormCudaParams p, int64_t x_stride) {
  __shared__ float scratch[33];
  detail::pdl_wait();
  const int32_t r = blockIdx.x;
  const int64_t src_row = p.rows ? p.rows[r] : r;
  const float* x = p.x + src_row * x_stride;
  float ss = 0.0f;
#pragma unroll 4
  for (int32_t i = threadIdx.x; i < p.dim; i += blockDim.x) ss += x[i] * x[i];
  const float mean_square = detail::block_sum(ss, scratch) / static_cast<float>(p.dim);
  const float inv_rms = 1.0f / sqrtf(mean_square + p.eps);
#pragma unroll 4
  for (int32_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float v = __fmul_rn(p.weight[i], __fmul_rn(x[i], inv_rms));
    if (p.y) p.y[int64_t{r} * p.dim + i] = v;
    if (p.y_bf16) p.y_bf16[int64_t{r} * p.dim + i] = __float2bfloat16(v);
  }
}

__device__ __forceinline__ void rotate_pair(float* v, int32_t i, int32_t half, float c, float s) {
  const float x1 = v[i], x2 = v[i + half];
  v[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
  v[i + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

__global__ void rope_kernel(RopeParams p) {
  const int32_t t = blockIdx.x;
  const int32_t half = p.head_dim / 2;
  const float pos = static_cast<float>(p.positions[t]);
  const int32_t heads = (p.q ? p.num_q_heads : 0) + (p.k ? p.num_kv_heads : 0);
  for (int32_t j = threadIdx.x; j < heads * half; j += blockDim.x) {
    int32_t h = j / half;
    const int32_t i = j % half;
    float s, c;
    sincosf(__fmul_rn(pos, p.inv_freq[i]), &s, &c);
    float* v;
    if (p.q && h < p.num_q_heads) {
      v = p.q + (int64_t{t} * p.num_q_heads + h) * p.head_dim;
    } else {
      if (p.q) h -= p.num_q_heads;
      v = p.k + (int64_t{t} * p.num_kv_heads + h) * p.head_dim;
    }
    rotate_pair(v, i, half, c, s);
  }
}

// One block of 1024 threads per token (larger batches: the full-width q/k norm sums once per token).
__global__ void qkv_prologue_token_kernel(QkvPrologueParams p) {
  extern __shared__ float row[];  // q | k | v of this token
  __shared__ float scratch[33];
  detail::pdl_wait();
  const int32_t t = blockIdx.x;
  const int32_t hd = p.head_dim, half = hd / 2;
  const int32_t q_dim = p.num_q_heads * hd, kv_dim = p.num_kv_heads * hd;
  const int32_t width = q_dim + 2 * kv_dim;
  const float* src = p.qkv + int64_t{t} * width;
#pragma unroll 4
  for (int32_t i = threadIdx.x; i < width; i += blockDim.x) row[i] = p.bias ? src[i] + p.bias[i] : src[i];
  __syncthreads();

  if (p.qk_norm == QkNormMode::kFull) {
    float ss = 0.0f;
    for (int32_t i = threadIdx.x; i < q_dim; i += blockDim.x) ss += row[i] * row[i];
    const float inv_q = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(q_dim) + p.eps);
    ss = 0.0f;
    for (int32_t i = threadIdx.x; i < kv_dim; i += blockDim.x) ss += row[q_dim + i] * row[q_dim + i];
    const float inv_k = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(kv_dim) + p.eps);
    for (int32_t i = threadIdx.x; i < q_dim; i += blockDim.x) row[i] = __fmul_rn(p.q_norm[i], __fmul_rn(row[i], inv_q));
    for (int32_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
      row[q_dim + i] = __fmul_rn(p.k_norm[i], __fmul_rn(row[q_dim + i], inv_k));
    }
    __syncthreads();
  } else if (p.qk_norm == QkNormMode::kPerHead) {
    const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int32_t h = warp; h < p.num_q_heads + p.num_kv_heads; h += warps) {
      float* v = row + int64_t{h} * hd;  // k heads follow the q heads
      const float* w = h < p.num_q_heads ? p.q_norm : p.k_norm;
      float ss = 0.0f;
      for (int32_t i = lane; i < hd; i += 32) ss += v[i] * v[i];
      const float inv = 1.0f / sqrtf(detail::warp_sum(ss) / static_cast<float>(hd) + p.eps);
      for (int32_t i = lane; i < hd; i += 32) v[i] = __fmul_rn(w[i], __fmul_rn(v[i], inv));
    }
    __syncthreads();
  }
  if (p.clip > 0.0f) {
    for (int32_t i = threadIdx.x; i < width; i += blockDim.x) row[i] = fminf(fmaxf(row[i], -p.clip), p.clip);
    __syncthreads();
  }
  const float pos = static_cast<float>(p.positions[t]);
  const int32_t heads = p.num_q_heads + p.num_kv_heads;
  for (int32_t j = threadIdx.x; j < heads * half; j += blockDim.x) {
    const int32_t h = j / half, i = j % half;
    float s, c;
    sincosf(__fmul_rn(pos, p.inv_freq[i]), &s, &c);
    rotate_pair(row + int64_t{h} * hd, i, half, c, s);
  }
  __syncthreads();
  float* q_out = p.q_out + int64_t{t} * q_dim;
  for (int32_t i = threadIdx.x; i < q_dim; i += blockDim.x) q_out[i] = row[i];
  const int32_t slot = p.slot_mapping[t];
  if (slot >= 0) {
    for (int32_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
      detail::store_from_float(p.k_cache, p.kv_dtype, int64_t{slot} * kv_dim + i, row[q_dim + i]);
      detail::store_from_float(p.v_cache, p.kv_dtype, int64_t{slot} * kv_dim + i, row[q_dim + kv_dim + i]);
    }
  }
}

// Small batches: one block per (token, head): q heads, then k heads, then v heads. A q/k head with
// the full-width norm sums the squares of its whole q (or k) row itself (a re-read from L2), so no
// block waits for another. Same float32 arithmetic per element as the CPU twins (bias, norm, clamp, RoPE).
constexpr int kPrologueThreads = 128;
constexpr int kPrologueMaxHeadDim = 256;
constexpr int32_t kPrologueHeadBlocksMaxTokens = 8;  // above: one block per token
__global__ void __launch_bounds__(kPrologueThreads) qkv_prologue_kernel(QkvPrologueParams p) {
  __shared__ float v[kPrologueMaxHeadDim];
  __shared__ float scratch[33];
  const int32_t t = blockIdx.x, head = blockIdx.y;
  const int32_t hd = p.head_dim, half = hd / 2;
  const int32_t q_dim = p.num_q_heads * hd, kv_dim = p.num_kv_heads * hd;
  const int32_t width = q_dim + 2 * kv_dim;
  const int kind = head < p.num_q_heads ? 0 : head < p.num_q_heads + p.num_kv_heads ? 1 : 2;  // q, k, v
  const int32_t hh = kind == 0 ? head : kind == 1 ? head - p.num_q_heads : head - p.num_q_heads - p.num_kv_heads;
  const int32_t region = kind == 0 ? 0 : kind == 1 ? q_dim : q_dim + kv_dim;  // start of q, k or v in the row
  const int32_t col = region + hh * hd;
  const float* src = p.qkv + int64_t{t} * width;
  // Step inputs and constants first (before the wait for the qkv GEMV): the slot, and the RoPE
  // angles of this thread's pairs (head_dim <= 256: at most one pair per thread).
  const int32_t slot = kind == 0 ? -1 : p.slot_mapping[t];
  float rs = 0.0f, rc = 1.0f;
  if (kind < 2 && static_cast<int32_t>(threadIdx.x) < half) {
    sincosf(__fmul_rn(static_cast<float>(p.positions[t]), p.inv_freq[threadIdx.x]), &rs, &rc);
  }
  detail::pdl_wait();
  for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) v[i] = p.bias ? src[col + i] + p.bias[col + i] : src[col + i];
  __syncthreads();
  if (kind < 2 && p.qk_norm != QkNormMode::kNone) {
    float ss = 0.0f;
    if (p.qk_norm == QkNormMode::kFull) {
      const int32_t len = kind == 0 ? q_dim : kv_dim;
      for (int32_t i = threadIdx.x; i < len; i += blockDim.x) {
        const float r = p.bias ? src[region + i] + p.bias[region + i] : src[region + i];
        ss += r * r;
      }
      const float inv = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(len) + p.eps);
      const float* w = (kind == 0 ? p.q_norm : p.k_norm) + int64_t{hh} * hd;
      for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) v[i] = __fmul_rn(w[i], __fmul_rn(v[i], inv));
    } else {
      for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) ss += v[i] * v[i];
      const float inv = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(hd) + p.eps);
      const float* w = kind == 0 ? p.q_norm : p.k_norm;
      for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) v[i] = __fmul_rn(w[i], __fmul_rn(v[i], inv));
    }
    __syncthreads();
  }
  if (p.clip > 0.0f) {
    for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) v[i] = fminf(fmaxf(v[i], -p.clip), p.clip);
    __syncthreads();
  }
  if (kind < 2) {
    if (static_cast<int32_t>(threadIdx.x) < half) rotate_pair(v, threadIdx.x, half, rc, rs);
    __syncthreads();
  }
  if (kind == 0) {
    float* q_out = p.q_out + int64_t{t} * q_dim + int64_t{hh} * hd;
    for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) q_out[i] = v[i];
    return;
  }
  if (slot < 0) return;
  void* cache = kind == 1 ? p.k_cache : p.v_cache;
  for (int32_t i = threadIdx.x; i < hd; i += blockDim.x) {
    detail::store_from_float(cache, p.kv_dtype, int64_t{slot} * kv_dim + int64_t{hh} * hd + i, v[i]);
  }
}

// Any batch: one warp per (token, head), kPrologueWarps heads per block, the arithmetic of
// detail::qkv_head_warp (shared with decode attention's folded prologue): a row's q, k and v have
// the same bits whatever the batch.
constexpr int kPrologueWarps = 4;
// trigger_early: the dependents (decode attention) may launch once this block has waited for the
// qkv GEMV (early_launches(), kEarlyAttention), so that they load their cached K/V rows meanwhile.
__global__ void __launch_bounds__(kPrologueWarps * 32)
    qkv_prologue_warp_kernel(QkvPrologueParams p, bool trigger_early) {
  __shared__ float ws[kPrologueWarps][detail::kQkvHeadMaxDim];
  const int32_t t = blockIdx.x, warp = static_cast<int32_t>(threadIdx.x >> 5), lane = threadIdx.x & 31;
  const int32_t head = static_cast<int32_t>(blockIdx.y) * kPrologueWarps + warp;
  const int32_t heads = p.num_q_heads + 2 * p.num_kv_heads;
  const int kind = head < p.num_q_heads ? 0 : head < p.num_q_heads + p.num_kv_heads ? 1 : 2;
  const int32_t hh = kind == 0 ? head : kind == 1 ? head - p.num_q_heads : head - p.num_q_heads - p.num_kv_heads;
  const int32_t hd = p.head_dim, kv_dim = p.num_kv_heads * hd;
  const int32_t slot = kind == 0 || head >= heads ? -1 : p.slot_mapping[t];  // a step input: before the wait
  detail::pdl_wait();
  if (trigger_early) detail::pdl_launch_dependents();
  if (head >= heads) return;  // whole warps; no block barrier below
  detail::qkv_head_warp(p, t, kind, hh, ws[warp]);
  if (kind == 0) {
    float* q_out = p.q_out + (int64_t{t} * p.num_q_heads + hh) * hd;
    for (int32_t i = lane; i < hd; i += 32) q_out[i] = ws[warp][i];
    return;
  }
  if (slot < 0) return;
  void* cache = kind == 1 ? p.k_cache : p.v_cache;
  for (int32_t i = lane; i < hd; i += 32) {
    detail::store_from_float(cache, p.kv_dtype, int64_t{slot} * kv_dim + int64_t{hh} * hd + i, ws[warp][i]);
  }
}

}  // namespace

bool legacy_prologue() {
  static const bool legacy = [] {
    const char* v = std::getenv("AURORA_LEGACY_PROLOGUE");
    return v && v[0] == '1';
  }();
  return legacy;
}

void launch_rms_norm(const RmsNormCudaParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  AURORA_KERNEL_CHECK(p.dim > 0 && (p.y || p.y_bf16), "rms_norm needs dim > 0 and an output");
  launch_pdl(rms_norm_kernel, dim3(p.num_rows), dim3(kNormThreads), 0, stream, p,
             p.x_stride ? p.x_stride : int64_t{p.dim});
}

void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  RmsNormCudaParams c;
  c.x = p.x;
  c.weight = p.weight;
  c.y = p.y;
  c.num_rows = p.num_rows;
  c.dim = p.dim;
  c.eps = p.eps;
  launch_rms_norm(c, stream);
}

void launch_rope(const RopeParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(p.head_dim % 2 == 0, "rope needs an even head_dim, got " << p.head_dim);
  rope_kernel<<<p.num_tokens, 128, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_qkv_prologue(const QkvPrologueParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  static_assert(kPrologueMaxHeadDim / 2 <= kPrologueThreads, "one RoPE pair per thread");
  AURORA_KERNEL_CHECK(
      p.head_dim % 2 == 0 && p.head_dim <= kPrologueMaxHeadDim && p.num_q_heads > 0 && p.num_kv_heads > 0,
      "bad attention shape: head_dim " << p.head_dim);
  if (!legacy_prologue()) {
    const int32_t heads = p.num_q_heads + 2 * p.num_kv_heads;
    const dim3 grid(static_cast<unsigned>(p.num_tokens),
                    static_cast<unsigned>(detail::ceil_div(heads, kPrologueWarps)));
    launch_pdl(qkv_prologue_warp_kernel, grid, dim3(kPrologueWarps * 32), 0, stream, p,
               (early_launches() & kEarlyAttention) != 0);
    return;
  }
  if (p.num_tokens > kPrologueHeadBlocksMaxTokens) {
    const size_t smem = sizeof(float) * size_t(p.head_dim) * (p.num_q_heads + 2 * p.num_kv_heads);
    ensure_dynamic_smem(reinterpret_cast<const void*>(qkv_prologue_token_kernel),
                        smem);  // per device, before any capture
    launch_pdl(qkv_prologue_token_kernel, dim3(p.num_tokens), dim3(1024), smem, stream, p);
    return;
  }
  const dim3 grid(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_q_heads + 2 * p.num_kv_heads));
  launch_pdl(qkv_prologue_kernel, grid, dim3(kPrologueThreads), 0, stream, p);
}

}  // namespace aurora::kernels::cuda
