// Paged attention (partitioned over the context, merged by the last block) and the KV-cache write.
#include "aurora/kernels/cuda/attention.hpp"

#include <algorithm>
#include <cstdlib>

#include "attention_cluster.cuh"
#include "attention_decode.cuh"
#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kP = kAttentionPartition;  // positions per block
constexpr int kTPP = kThreads / kP;      // threads per position in the score phase
constexpr int kQ = kThreads / 32;        // position groups (warps) in the value phase
constexpr int kHeadsPerPass = 8;
constexpr int kDimsPerLane = kAttentionMaxHeadDim / 32;
static_assert(kThreads % kP == 0 && kTPP == 2, "the score phase pairs two threads per position");
constexpr int64_t kTicketCapacity = 65536;  // ints at the head of the workspace
constexpr size_t kTicketBytes = kTicketCapacity * sizeof(int32_t);

using detail::load8;
__device__ __forceinline__ float load1(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load1(const float* p) { return *p; }

// Shared by both partitioned kernels.
// Softmax statistics of each head's scores (scores[h * stride + j], j < n), one warp per head: the
// scores become exp(score - max) in place, (max, sum) go to stats[2 h], stats[2 h + 1].
__device__ __forceinline__ void partition_softmax(float* scores, int32_t stride, int32_t n, int32_t group,
                                                  int32_t warps, float* stats) {
  const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int32_t h = warp; h < group; h += warps) {
    float m = -INFINITY;
    for (int32_t j = lane; j < n; j += 32) m = fmaxf(m, scores[h * stride + j]);
    m = detail::warp_max(m);
    float l = 0.0f;
    for (int32_t j = lane; j < n; j += 32) {
      const float e = expf(scores[h * stride + j] - m);
      scores[h * stride + j] = e;
      l += e;
    }
    l = detail::warp_sum(l);
    if (lane == 0) {
      stats[2 * h] = m;
      stats[2 * h + 1] = l;
    }
  }
}

// Head hh's output element d from this partition: final (one partition: o / sum), else its partial.
__device__ __forceinline__ void partition_output(const PagedAttentionCudaParams& p, float o, int32_t hh, int32_t d,
                                                 int32_t hd, int32_t nparts, const float* stats, int64_t q_base,
                                                 float* part_out, int64_t ml_base, int32_t max_parts, int32_t part) {
  if (nparts == 1) {
    detail::store_from_float(p.out, p.out_dtype, q_base + int64_t{hh} * hd + d, o / stats[2 * hh + 1]);
  } else {
    part_out[((ml_base + int64_t{hh} * max_parts) + part) * hd + d] = o;
  }
}

// This partition's (max, sum) per head into the workspace, and whether this block is the last of
// its (token, kv head) to finish (a self-resetting ticket): then the others' partials are visible.
// Called by the whole block; is_last: shared scratch.
__device__ __forceinline__ bool publish_partition(const float* stats, int32_t group, float* part_ml, int64_t ml_base,
                                                  int32_t max_parts, int32_t part, int32_t* ticket, int32_t nparts,
                                                  int32_t& is_last) {
  if (static_cast<int32_t>(threadIdx.x) < group) {
    part_ml[2 * (ml_base + int64_t{threadIdx.x} * max_parts + part)] = stats[2 * threadIdx.x];
    part_ml[2 * (ml_base + int64_t{threadIdx.x} * max_parts + part) + 1] = stats[2 * threadIdx.x + 1];
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    is_last = atomicAdd(ticket, 1) == nparts - 1;
    if (is_last) *ticket = 0;
  }
  __syncthreads();
  if (!is_last) return false;
  __threadfence();
  return true;
}

// The merge of a (token, kv head)'s partitions, each output element walking them (threads of the
// block over the group's heads x head_dim elements).
__device__ __forceinline__ void merge_partitions(const PagedAttentionCudaParams& p, const float* part_out,
                                                 const float* part_ml, int64_t ml_base, int64_t q_base,
                                                 int32_t max_parts, int32_t nparts, int32_t group, int32_t hd) {
  for (int32_t i = threadIdx.x; i < group * hd; i += blockDim.x) {
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
  float* q_s = smem;                 // [group][hd]
  float* scores = q_s + group * hd;  // [group][kP]
  float* red = scores + group * kP;  // [kQ][kHeadsPerPass][hd]
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
  partition_softmax(scores, kP, n, group, kThreads / 32, stats);
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
      partition_output(p, o, hh, d, hd, nparts, stats, q_base, part_out, ml_base, max_parts, part);
    }
    __syncthreads();
  }
  if (nparts == 1) return;
  // The last partition block of this (token, kv head) merges.
  if (!publish_partition(stats, group, part_ml, ml_base, max_parts, part, tickets + int64_t{t} * p.num_kv_heads + g,
                         nparts, is_last)) {
    return;
  }
  merge_partitions(p, part_out, part_ml, ml_base, q_base, max_parts, nparts, group, hd);
}

// ---- bf16 caches: K and V of a partition staged in shared memory ----------------------------------

constexpr int kBfHeadsPerPass = 8;  // query heads accumulated at once in the value phase

// Shared-memory layout of paged_attention_bf16_kernel, the same on host and device.
struct Bf16Layout {
  int row;  // padded row of a staged K/V row, in bf16 elements (head_dim + 8: no bank conflicts)
  size_t k_off, v_off, s_off, q_off, bytes;
};
__host__ __device__ inline Bf16Layout bf16_layout(int hd, int group, int positions) {
  Bf16Layout l{};
  l.row = hd + 8;
  const size_t rows = size_t(positions) * size_t(l.row) * 2;
  const size_t red = size_t(positions) * kBfHeadsPerPass * 8 * 4;  // value-phase partial sums (reuse K)
  l.k_off = 0;
  l.v_off = rows > red ? rows : red;
  l.s_off = l.v_off + rows;
  l.q_off = l.s_off + size_t(group) * positions * 4;
  l.bytes = l.q_off + size_t(group) * hd * 4;
  return l;
}

// One block of P = 32 * WARPS threads per (partition of P positions, kv head, token).
//  1. slots of the partition's positions, q of the group (float32) into shared memory;
//  2. every K row, then every V row, of the partition: 16-byte cp.async, coalesced (a warp copies
//     whole rows), two commit groups so that the scores start when K has landed;
//  3. scores: thread j dots position j's K row with each query head (q broadcast from shared);
//  4. softmax statistics, one warp per head;
//  5. values: thread (position slice s, 8-dim chunk c) accumulates sum_j p[h][j] V[j][c] over its
//     slice for 8 heads at a time; slices meet in shared memory in a fixed order;
//  6. one partition: out = o / l; else (m, l, o) to the workspace and the last block merges.
template <int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    paged_attention_bf16_kernel(PagedAttentionCudaParams p, int32_t* tickets, float* part_out, float* part_ml,
                                int32_t max_parts) {
  constexpr int NT = WARPS * 32;
  constexpr int P = NT;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ int32_t slots[P];
  __shared__ float stats[2 * kAttentionMaxGroup];
  __shared__ int32_t is_last;
  // Positions, block tables and slots are step inputs (no kernel writes them): they are read before
  // the wait for the previous kernel, which writes q and this token's K/V rows.
  const int32_t t = blockIdx.z, g = blockIdx.y, part = blockIdx.x;
  const int32_t tid = threadIdx.x;
  const int32_t hd = p.head_dim, group = p.num_q_heads / p.num_kv_heads;
  const int32_t pos = p.token_pos[t];
  const int32_t start = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int32_t nparts = (pos - start + P) / P;  // ceil((pos - start + 1) / P)
  if (part >= nparts) return;
  const int32_t j0 = start + part * P;
  const int32_t n = min(j0 + P, pos + 1) - j0;
  const Bf16Layout L = bf16_layout(hd, group, P);
  bf16* ks = reinterpret_cast<bf16*>(smem_raw + L.k_off);
  bf16* vs = reinterpret_cast<bf16*>(smem_raw + L.v_off);
  float* red = reinterpret_cast<float*>(smem_raw + L.k_off);  // after the scores
  float* sc = reinterpret_cast<float*>(smem_raw + L.s_off);   // [group][P]
  float* qs = reinterpret_cast<float*>(smem_raw + L.q_off);   // [group][hd]
  const int64_t q_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * hd;
  const int64_t slot_stride = int64_t{p.num_kv_heads} * hd;
  if (tid < n) {
    const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
    const int32_t position = j0 + tid;
    slots[tid] = table[position / p.block_size] * p.block_size + position % p.block_size;
  }
  detail::pdl_wait();

  // 1. (q as float4, four loads in flight per thread before the stores)
  {
    const float4* q4 = reinterpret_cast<const float4*>(p.q + q_base);
    float4* qs4 = reinterpret_cast<float4*>(qs);
    const int32_t n4 = group * hd / 4;
    for (int32_t i0 = tid; i0 < n4; i0 += 4 * NT) {
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        if (i0 + u * NT < n4) v[u] = q4[i0 + u * NT];
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        if (i0 + u * NT < n4) qs4[i0 + u * NT] = v[u];
      }
    }
  }
  __syncthreads();

  // 2.
  const int32_t cpr = hd / 8;  // 16-byte chunks per row
  const bf16* kbase = static_cast<const bf16*>(p.k_cache) + int64_t{g} * hd;
  const bf16* vbase = static_cast<const bf16*>(p.v_cache) + int64_t{g} * hd;
  for (int32_t i = tid; i < n * cpr; i += NT) {
    const int32_t r = i / cpr, c = i - r * cpr;
    detail::cp_async16(ks + r * L.row + 8 * c, kbase + int64_t{slots[r]} * slot_stride + 8 * c);
  }
  detail::cp_async_commit();
  for (int32_t i = tid; i < n * cpr; i += NT) {
    const int32_t r = i / cpr, c = i - r * cpr;
    detail::cp_async16(vs + r * L.row + 8 * c, vbase + int64_t{slots[r]} * slot_stride + 8 * c);
  }
  detail::cp_async_commit();
  detail::cp_async_wait<1>();
  __syncthreads();

  // 3.
  if (tid < n) {
    float acc[kAttentionMaxGroup];
#pragma unroll
    for (int h = 0; h < kAttentionMaxGroup; ++h) acc[h] = 0.0f;
    const bf16* krow = ks + tid * L.row;
    for (int32_t c = 0; c < cpr; ++c) {
      float kf[8];
      load8(krow + 8 * c, kf);
#pragma unroll
      for (int h = 0; h < kAttentionMaxGroup; ++h) {
        if (h < group) {
          const float4 a = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c);
          const float4 b = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c + 4);
          acc[h] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] + b.x * kf[4] + b.y * kf[5] + b.z * kf[6] +
                    b.w * kf[7];
        }
      }
    }
#pragma unroll
    for (int h = 0; h < kAttentionMaxGroup; ++h) {
      if (h < group) sc[h * P + tid] = acc[h] * p.scale;
    }
  }
  __syncthreads();

  // 4.
  const int32_t lane = tid & 31, warp = tid >> 5;
  partition_softmax(sc, P, n, group, WARPS, stats);
  detail::cp_async_wait<0>();
  __syncthreads();

  // 5.
  const int32_t ppw = 32 / cpr;  // position slices per warp
  const int32_t sl = lane / cpr, c = lane - sl * cpr;
  const bool active = sl < ppw;
  const int32_t slice = warp * ppw + sl, slices = WARPS * ppw;
  const int64_t ml_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * max_parts;
  for (int32_t h0 = 0; h0 < group; h0 += kBfHeadsPerPass) {
    float acc[kBfHeadsPerPass][8];
#pragma unroll
    for (int h = 0; h < kBfHeadsPerPass; ++h)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[h][e] = 0.0f;
    if (active) {
      for (int32_t j = slice; j < n; j += slices) {
        float vf[8];
        load8(vs + j * L.row + 8 * c, vf);
#pragma unroll
        for (int h = 0; h < kBfHeadsPerPass; ++h) {
          if (h0 + h < group) {
            const float w = sc[(h0 + h) * P + j];
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[h][e] += w * vf[e];
          }
        }
      }
#pragma unroll
      for (int h = 0; h < kBfHeadsPerPass; ++h) {
        if (h0 + h < group) {
          float* r = red + (int64_t{slice} * kBfHeadsPerPass + h) * hd + 8 * c;
          *reinterpret_cast<float4*>(r) = make_float4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]);
          *reinterpret_cast<float4*>(r + 4) = make_float4(acc[h][4], acc[h][5], acc[h][6], acc[h][7]);
        }
      }
    }
    __syncthreads();
    for (int32_t e = tid; e < kBfHeadsPerPass * hd; e += NT) {
      const int32_t h = e / hd, d = e - h * hd, hh = h0 + h;
      if (hh >= group) continue;
      float o = 0.0f;
      for (int32_t s = 0; s < slices; ++s) o += red[(int64_t{s} * kBfHeadsPerPass + h) * hd + d];
      partition_output(p, o, hh, d, hd, nparts, stats, q_base, part_out, ml_base, max_parts, part);
    }
    __syncthreads();
  }
  if (nparts == 1) return;

  // 6.
  detail::pdl_launch_dependents();  // late: only the merge by the last block remains
  if (!publish_partition(stats, group, part_ml, ml_base, max_parts, part, tickets + int64_t{t} * p.num_kv_heads + g,
                         nparts, is_last)) {
    return;
  }
  // Per head: the global max and the weight of each partition, in shared memory (sc is free now).
  float* wts = sc;  // [group][nparts], nparts <= max_parts
  if (nparts <= P) {
    for (int32_t i = tid; i < group * nparts; i += NT) {
      const int32_t hh = i / nparts, q = i - hh * nparts;
      wts[i] = __ldcg(part_ml + 2 * (ml_base + int64_t{hh} * max_parts + q));
    }
    __syncthreads();
    for (int32_t hh = warp; hh < group; hh += WARPS) {
      float m = -INFINITY;
      for (int32_t q = lane; q < nparts; q += 32) m = fmaxf(m, wts[hh * nparts + q]);
      m = detail::warp_max(m);
      float l = 0.0f;
      for (int32_t q = lane; q < nparts; q += 32) {
        const float w = expf(wts[hh * nparts + q] - m);
        l += w * __ldcg(part_ml + 2 * (ml_base + int64_t{hh} * max_parts + q) + 1);
        wts[hh * nparts + q] = w;
      }
      l = detail::warp_sum(l);
      __syncwarp();
      if (lane == 0) stats[2 * hh + 1] = l;
    }
    __syncthreads();
    // Four output elements per thread at a time, so that 4 x 4 partial loads are in flight.
    for (int32_t i0 = tid; i0 < group * hd; i0 += 4 * NT) {
      float o[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const float* po[4];
      int32_t hh[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t i = min(i0 + u * NT, group * hd - 1);
        hh[u] = i / hd;
        po[u] = part_out + (ml_base + int64_t{hh[u]} * max_parts) * hd + (i - hh[u] * hd);
      }
#pragma unroll 4
      for (int32_t q = 0; q < nparts; ++q) {
#pragma unroll
        for (int u = 0; u < 4; ++u) o[u] += wts[hh[u] * nparts + q] * __ldcg(po[u] + int64_t{q} * hd);
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t i = i0 + u * NT;
        if (i < group * hd) detail::store_from_float(p.out, p.out_dtype, q_base + i, o[u] / stats[2 * hh[u] + 1]);
      }
    }
    return;
  }
  // Very long contexts (more partitions than threads): each output element walks the partitions.
  merge_partitions(p, part_out, part_ml, ml_base, q_base, max_parts, nparts, group, hd);
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
  AURORA_KERNEL_CHECK(p.positions_bound >= 0, "attention positions_bound must be >= 0, got " << p.positions_bound);
  AURORA_KERNEL_CHECK(p.partition_size == 0 || p.partition_size == 64 || p.partition_size == 128,
                      "attention partition_size must be 0, 64 or 128, got " << p.partition_size);
  AURORA_KERNEL_CHECK(p.cluster_blocks == -1 || p.cluster_blocks == 0 || p.cluster_blocks == 1 ||
                          p.cluster_blocks == 2 || p.cluster_blocks == 4 || p.cluster_blocks == 8 ||
                          p.cluster_blocks == 16,
                      "attention cluster_blocks must be -1, 0, 1, 2, 4, 8 or 16, got " << p.cluster_blocks);
  // bf16 caches: the cluster kernel where forced or chosen by size, unless a partition size asks
  // for the partitioned one (or a switch). A forced cluster kernel folds a fused prologue in.
  const bool forced = p.cluster_blocks != 0;
  const bool default_bf16 = p.kv_dtype == DType::kBF16 && p.partition_size == 0 && !legacy_attention();
  // The tensor-core kernel for some of the cluster kernel's launches (decode_mma_attention_small).
  const bool mma_small = default_bf16 && !forced && detail::decode_mma_attention_small(p);
  const bool cluster =
      default_bf16 && !p.decode_mma && !mma_small && (forced || detail::cluster_attention_for(p.num_tokens));
  if (cluster && (!p.fused_prologue || forced || detail::prologue_fold_allowed()) &&
      detail::launch_cluster_attention(p, stream)) {
    return;
  }
  if (p.fused_prologue) {  // the prologue on its own, then attention
    AURORA_KERNEL_CHECK(p.prologue.num_tokens == p.num_tokens, "fused prologue: token counts differ");
    launch_qkv_prologue(p.prologue, stream);
    PagedAttentionCudaParams rest = p;
    rest.fused_prologue = false;
    launch_paged_attention(rest, workspace, workspace_bytes, stream);
    return;
  }
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
  const size_t needed =
      attention_workspace_bytes(p.num_tokens, p.num_q_heads, p.num_kv_heads, p.head_dim, p.max_context);
  AURORA_KERNEL_CHECK(workspace_bytes >= needed, "attention workspace " << workspace_bytes << " < " << needed);
  const int32_t parts = max_partitions(p.max_context);
  auto* tickets = static_cast<int32_t*>(workspace);
  float* part_out = reinterpret_cast<float*>(static_cast<char*>(workspace) + kTicketBytes);
  float* part_ml = part_out + int64_t{p.num_tokens} * p.num_q_heads * parts * p.head_dim;
  // bf16 caches: the tensor-core decode kernel unless a partition size asks for the partitioned one
  // (its ranges of >= 64 keys fit the workspace's partitions of kP).
  if (p.decode_mma ||
      (default_bf16 && detail::decode_mma_attention_enabled() && detail::decode_mma_attention_supports(p))) {
    detail::launch_decode_mma_attention(p, detail::DecodeAttentionWorkspace{tickets, part_out, part_ml, parts}, stream);
    return;
  }
  if (p.kv_dtype == DType::kBF16 && !legacy_attention()) {
    // 128 positions per block (64 on request: measured slower at batch 1, where the merge of twice
    // as many partitions by half as many threads is on the critical path).
    const int32_t P = p.partition_size == 0 ? 128 : p.partition_size;
    // Partitions up to the launch's longest context (the bound, if given); the rest would exit at once.
    const int32_t context = p.positions_bound > 0 ? std::min(p.positions_bound, p.max_context) : p.max_context;
    const int32_t bparts = (context + P - 1) / P;
    const Bf16Layout L = bf16_layout(p.head_dim, group, P);
    const dim3 bgrid(static_cast<unsigned>(bparts), static_cast<unsigned>(p.num_kv_heads),
                     static_cast<unsigned>(p.num_tokens));
    auto* kernel = P == 64 ? paged_attention_bf16_kernel<2> : paged_attention_bf16_kernel<4>;
    ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), L.bytes);  // per device, before any capture
    // Decode: most blocks of the grid (partitions up to max_context) exit at once; the few that work
    // may launch early (pdl_mode 2).
    const bool small = int64_t{p.num_tokens} * p.num_kv_heads <= sm_count();
    launch_pdl_hinted(small, kernel, bgrid, dim3(P), L.bytes, stream, p, tickets, part_out, part_ml, bparts);
    return;
  }
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(p.num_kv_heads),
                  static_cast<unsigned>(p.num_tokens));
  const size_t smem = sizeof(float) * (size_t(group) * (p.head_dim + kP) + size_t(kQ) * kHeadsPerPass * p.head_dim);
  ensure_dynamic_smem(reinterpret_cast<const void*>(paged_attention_kernel<float>), smem);  // per device
  ensure_dynamic_smem(reinterpret_cast<const void*>(paged_attention_kernel<bf16>), smem);
  if (p.kv_dtype == DType::kBF16) {
    paged_attention_kernel<bf16><<<grid, kThreads, smem, stream>>>(p, tickets, part_out, part_ml, parts);
  } else {
    paged_attention_kernel<float><<<grid, kThreads, smem, stream>>>(p, tickets, part_out, part_ml, parts);
  }
  AURORA_CUDA_LAUNCH_CHECK();
}

namespace detail {
bool prologue_fold_allowed() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_FUSED_PROLOGUE");
    return v && v[0] == '1' && !legacy_prologue();
  }();
  return on;
}
}  // namespace detail

bool attention_folds_prologue(int32_t num_tokens) {
  return detail::cluster_attention_for(num_tokens) && detail::prologue_fold_allowed();
}

void launch_write_kv_cache(const KvCacheWriteParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  write_kv_cache_kernel<<<p.num_tokens, 128, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

}  // namespace aurora::kernels::cuda
