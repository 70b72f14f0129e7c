// RMSNorm, RoPE and the fused attention prologue (bias, q/k norm, clamp, RoPE, KV-cache write).
#include "aurora/kernels/cuda/norm_rope.hpp"

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kNormThreads = 1024;  // one row per block: many loads in flight for one token

__global__ void rms_norm_kernel(RmsNormCudaParams p, int64_t x_stride) {
  __shared__ float scratch[33];
  detail::pdl_launch_dependents();
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

__global__ void qkv_prologue_kernel(QkvPrologueParams p) {
  extern __shared__ float row[];  // q | k | v of this token
  __shared__ float scratch[33];
  detail::pdl_launch_dependents();
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

}  // namespace

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
  AURORA_KERNEL_CHECK(p.head_dim % 2 == 0 && p.num_q_heads > 0 && p.num_kv_heads > 0, "bad attention shape");
  const size_t smem = sizeof(float) * size_t(p.head_dim) * (p.num_q_heads + 2 * p.num_kv_heads);
  ensure_dynamic_smem(reinterpret_cast<const void*>(qkv_prologue_kernel), smem);  // per device, before any capture
  launch_pdl(qkv_prologue_kernel, dim3(p.num_tokens), dim3(1024), smem, stream, p);
}

}  // namespace aurora::kernels::cuda
