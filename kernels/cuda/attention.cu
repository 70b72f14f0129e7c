// Paged attention (partitioned over the context, merged by the last block) and the KV-cache write.
#include "aurora/kernels/cuda/attention.hpp"

#include <algorithm>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kP = kAttentionPartition;     // positions per block
constexpr int kTPP = kThreads / kP;          // threads per position in the score phase
constexpr int kQ = kThreads / 32;            // position groups (warps) in the value phase
constexpr int kHeadsPerPass = 8;
constexpr int kDimsPerLane = kAttentionMaxHeadDim / 32;
static_assert(kThreads % kP == 0 && kTPP == 2, "the score phase pairs two threads per position");
constexpr int64_t kTicketCapacity = 65536;  // ints at the head of the workspace
constexpr size_t kTicketBytes = kTicketCapacity * sizeof(int32_t);

// Loads 8 consecutive cache elements as float.
__device__ __forceinline__ void load8(const bf16* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
  out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
}
__device__ __forceinline__ float load1(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load1(const float* p) { return *p; }

// One block per (partition of kP positions, kv head, token). Every phase keeps many independent
// loads in flight: the score phase splits each key row over two threads (four 16-byte loads each
// before use), the value phase gives each warp a quarter of the positions and each lane dims
// lane + 32 i, four positions at a time, then the warps' partial sums meet in shared memory.
template <typename KV>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(PagedAttentionCudaParams p, int32_t* tickets,
                                                                   float* part_out, float* part_ml, int32_t max_parts) {
  extern __shared__ float smem[];
  __shared__ int32_t slots[kP];
  __shared__ float stats[2 * kAttentionMaxGroup];
  __shared__ int32_t is_last;
  const int32_t t = blockIdx.z, g = blockIdx.y, part = blockIdx.x;
  const int32_t hd = p.head_dim, group = p.num_q_heads / p.num_kv_heads;
  const int32_t pos = p.token_pos[t];
  const int32_t start = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int32_t nparts = (pos - start + kP) / kP;  // ceil((pos - start + 1) / kP)
  if (part >= nparts) return;
  const int32_t j0 = start + part * kP;
  const int32_t n = min(j0 + kP, pos + 1) - j0;
  const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
  const KV* k_cache = static_cast<const KV*>(p.k_cache);
  const KV* v_cache = static_cast<const KV*>(p.v_cache);
  float* q_s = smem;                   // [group][hd]
  float* scores = q_s + group * hd;    // [group][kP]
  float* red = scores + group * kP;    // [kQ][kHeadsPerPass][hd]
  const int64_t q_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * hd;
  const int64_t slot_stride = int64_t{p.num_kv_heads} * hd;
  for (int32_t i = threadIdx.x; i < group * hd; i += kThreads) q_s[i] = p.q[q_base + i];
  if (threadIdx.x < n) {
    const int32_t position = j0 + threadIdx.x;
    slots[threadIdx.x] = table[position / p.block_size] * p.block_size + position % p.block_size;
  }
  __syncthreads();

  // Scores: two threads per position, chunks of 8 dims interleaved between them.
  const int32_t pl = threadIdx.x / kTPP, half = threadIdx.x % kTPP;
  const int32_t nchunks = hd / 8;
  for (int32_t h0 = 0; h0 < group; h0 += kHeadsPerPass) {
    float acc[kHeadsPerPass];
#pragma unroll
    for (int h = 0; h < kHeadsPerPass; ++h) acc[h] = 0.0f;
    if (pl < n) {
      const KV* krow = k_cache + int64_t{slots[pl]} * slot_stride + int64_t{g} * hd;
      for (int32_t c0 = half; c0 < nchunks; c0 += 4 * kTPP) {
        float kf[4][8];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int32_t c = c0 + u * kTPP;
          if (c < nchunks) load8(krow + 8 * c, kf[u]);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int32_t c = c0 + u * kTPP;
          if (c >= nchunks) break;
#pragma unroll
          for (int h = 0; h < kHeadsPerPass; ++h) {
            if (h0 + h < group) {
              const float* qh = q_s + (h0 + h) * hd + 8 * c;
#pragma unroll
              for (int e = 0; e < 8; ++e) acc[h] += qh[e] * kf[u][e];
            }
          }
        }
      }
    }
#pragma unroll
    for (int h = 0; h < kHeadsPerPass; ++h) acc[h] += __shfl_xor_sync(0xffffffffu, acc[h], 1);
    if (pl < n && half == 0) {
#pragma unroll
      for (int h = 0; h < kHeadsPerPass; ++h) {
        if (h0 + h < group) scores[(h0 + h) * kP + pl] = acc[h] * p.scale;
      }
    }
  }
  __syncthreads();

  // Local softmax statistics, one warp per head.
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int32_t h = warp; h < group; h += kThreads / 32) {
    float m = -INFINITY;
    for (int32_t j = lane; j < n; j += 32) m = fmaxf(m, scores[h * kP + j]);
    m = detail::warp_max(m);
    float l = 0.0f;
    for (int32_t j = lane; j < n; j += 32) {
      const float e = expf(scores[h * kP + j] - m);
      scores[h * kP + j] = e;
      l += e;
    }
    l = detail::warp_sum(l);
    if (lane == 0) {
      stats[2 * h] = m;
      stats[2 * h + 1] = l;
    }
  }
  __syncthreads();

  // Weighted values: warp `warp` takes positions warp, warp + kQ, ...; lane takes dims lane + 32 i.
  const int64_t ml_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * max_parts;
  const KV* vbase = v_cache + int64_t{g} * hd;
  for (int32_t h0 = 0; h0 < group; h0 += kHeadsPerPass) {
    float acc[kHeadsPerPass][kDimsPerLane];
#pragma unroll
    for (int h = 0; h < kHeadsPerPass; ++h)
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) acc[h][i] = 0.0f;
    for (int32_t jb = warp; jb < n; jb += 4 * kQ) {
      float v[4][kDimsPerLane];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t j = jb + u * kQ;
#pragma unroll
        for (int i = 0; i < kDimsPerLane; ++i) {
          const int32_t d = lane + 32 * i;
          v[u][i] = j < n && d < hd ? load1(vbase + int64_t{slots[j]} * slot_stride + d) : 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t j = jb + u * kQ;
        if (j >= n) break;
#pragma unroll
        for (int h = 0; h < kHeadsPerPass; ++h) {
          if (h0 + h < group) {
            const float w = scores[(h0 + h) * kP + j];
#pragma unroll
            for (int i = 0; i < kDimsPerLane; ++i) acc[h][i] += w * v[u][i];
          }
        }
      }
    }
#pragma unroll
    for (int h = 0; h < kHeadsPerPass; ++h) {
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) {
        const int32_t d = lane + 32 * i;
        if (h0 + h < group && d < hd) red[(warp * kHeadsPerPass + h) * hd + d] = acc[h][i];
      }
    }
    __syncthreads();
    for (int32_t e = threadIdx.x; e < kHeadsPerPass * hd; e += kThreads) {
      const int32_t h = e / hd, d = e % hd, hh = h0 + h;
      if (hh >= group) continue;
      float o = 0.0f;
#pragma unroll
      for (int q = 0; q < kQ; ++q) o += red[(q * kHeadsPerPass + h) * hd + d];
      if (nparts == 1) {
        detail::store_from_float(p.out, p.out_dtype, q_base + int64_t{hh} * hd + d, o / stats[2 * hh + 1]);
      } else {
        part_out[((ml_base + int64_t{hh} * max_parts) + part) * hd + d] = o;
      }
    }
    __syncthreads();
  }
  if (nparts == 1) return;
  if (threadIdx.x < group) {
    part_ml[2 * (ml_base + int64_t{threadIdx.x} * max_parts + part)] = stats[2 * threadIdx.x];
    part_ml[2 * (ml_base + int64_t{threadIdx.x} * max_parts + part) + 1] = stats[2 * threadIdx.x + 1];
  }
  // The last partition block of this (token, kv head) merges.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* ticket = tickets + int64_t{t} * p.num_kv_heads + g;
    is_last = atomicAdd(ticket, 1) == nparts - 1;
    if (is_last) *ticket = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int32_t i = threadIdx.x; i < group * hd; i += kThreads) {
    const int32_t hh = i / hd, d = i % hd;
    const float* ml = part_ml + 2 * (ml_base + int64_t{hh} * max_parts);
    float m = -INFINITY;
#pragma unroll 4
    for (int32_t q = 0; q < nparts; ++q) m = fmaxf(m, __ldcg(ml + 2 * q));
    float l = 0.0f, o = 0.0f;
    const float* po = part_out + (ml_base + int64_t{hh} * max_parts) * hd + d;
#pragma unroll 4
    for (int32_t q = 0; q < nparts; ++q) {
      const float w = expf(__ldcg(ml + 2 * q) - m);
      l += w * __ldcg(ml + 2 * q + 1);
      o += w * __ldcg(po + int64_t{q} * hd);
    }
    detail::store_from_float(p.out, p.out_dtype, q_base + int64_t{hh} * hd + d, o / l);
  }
}

__global__ void write_kv_cache_kernel(KvCacheWriteParams p) {
  const int32_t t = blockIdx.x;
  const int64_t row = int64_t{p.num_kv_heads} * p.head_dim;
  const int64_t slot = p.slot_mapping[t];
  for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
    p.k_cache[slot * row + i] = p.k[t * row + i];
    p.v_cache[slot * row + i] = p.v[t * row + i];
  }
}

int32_t max_partitions(int32_t max_context) { return std::max(1, (max_context + kP - 1) / kP); }

}  // namespace

size_t attention_workspace_bytes(int32_t num_tokens, int32_t num_q_heads, int32_t /*num_kv_heads*/, int32_t head_dim,
                                 int32_t max_context) {
  const int64_t parts = max_partitions(max_context);
  const int64_t rows = int64_t{num_tokens} * num_q_heads * parts;
  return kTicketBytes + static_cast<size_t>(rows * head_dim + rows * 2) * sizeof(float);
}

void launch_paged_attention(const PagedAttentionCudaParams& p, void* workspace, size_t workspace_bytes,
                            cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(p.num_kv_heads > 0 && p.num_q_heads % p.num_kv_heads == 0, "bad head counts");
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  AURORA_KERNEL_CHECK(group <= kAttentionMaxGroup && p.head_dim % 8 == 0 && p.head_dim <= kAttentionMaxHeadDim,
                      "attention shape unsupported: group " << group << ", head_dim " << p.head_dim);
  AURORA_KERNEL_CHECK(p.max_context >= 1, "max_context must be set");
  const int64_t max_tokens_per_launch = kTicketCapacity / p.num_kv_heads;
  if (p.num_tokens > max_tokens_per_launch) {
    PagedAttentionCudaParams chunk = p;
    for (int32_t first = 0; first < p.num_tokens; first += static_cast<int32_t>(max_tokens_per_launch)) {
      chunk.num_tokens = static_cast<int32_t>(std::min<int64_t>(max_tokens_per_launch, p.num_tokens - first));
      const int64_t offset = int64_t{first} * p.num_q_heads * p.head_dim;
      chunk.q = p.q + offset;
      chunk.out = static_cast<char*>(p.out) + offset * static_cast<int64_t>(dtype_bytes(p.out_dtype));
      chunk.token_seq = p.token_seq + first;
      chunk.token_pos = p.token_pos + first;
      launch_paged_attention(chunk, workspace, workspace_bytes, stream);
    }
    return;
  }
  const size_t needed = attention_workspace_bytes(p.num_tokens, p.num_q_heads, p.num_kv_heads, p.head_dim, p.max_context);
  AURORA_KERNEL_CHECK(workspace_bytes >= needed, "attention workspace " << workspace_bytes << " < " << needed);
  const int32_t parts = max_partitions(p.max_context);
  auto* tickets = static_cast<int32_t*>(workspace);
  float* part_out = reinterpret_cast<float*>(static_cast<char*>(workspace) + kTicketBytes);
  float* part_ml = part_out + int64_t{p.num_tokens} * p.num_q_heads * parts * p.head_dim;
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(p.num_tokens));
  const size_t smem = sizeof(float) * (size_t(group) * (p.head_dim + kP) + size_t(kQ) * kHeadsPerPass * p.head_dim);
  static size_t configured = 48 * 1024;  // raised once, before any capture uses a larger shape
  if (smem > configured) {
    AURORA_CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    AURORA_CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    configured = smem;
  }
  if (p.kv_dtype == DType::kBF16) {
    paged_attention_kernel<bf16><<<grid, kThreads, smem, stream>>>(p, tickets, part_out, part_ml, parts);
  } else {
    paged_attention_kernel<float><<<grid, kThreads, smem, stream>>>(p, tickets, part_out, part_ml, parts);
  }
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_write_kv_cache(const KvCacheWriteParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  write_kv_cache_kernel<<<p.num_tokens, 128, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

}  // namespace aurora::kernels::cuda
