// Paged attention for bf16 caches, thread-block clusters per (token, kv head): see attention_cluster.cuh.
//
// The context [start, pos] of a token is cut into at most 16 equal ranges of at least 32 positions
// (a function of the position alone). A cluster of CL blocks (16 at batch 1; fewer, each taking
// 16 / CL ranges in turn, when tokens x kv heads fill the GPU) serves one (token, kv head); ranges are
// staged through shared memory in chunks of 64 positions (16-byte asynchronous copies, the next
// chunk's copies in flight while the current one is used), with an online softmax across a range's
// chunks. The blocks then meet through distributed shared memory: each reads every range's (max, sum)
// per head and merges a slice of the output elements, summing the ranges in order. No workspace, no
// ticket, no serialising last block; the grid does not depend on the longest context of the batch.
#include <cooperative_groups.h>

#include <cstdlib>
#include <utility>

#include "attention_cluster.cuh"
#include "cluster_probe.cuh"
#include "device_utils.cuh"
#include "qkv_head.cuh"

namespace aurora::kernels::cuda::detail {
namespace {
namespace cg = cooperative_groups;

constexpr int kNT = 128;                             // threads per block
constexpr int kCP = 64;                              // positions per staged chunk, at most
constexpr int kTPP = kNT / kCP;                      // threads per position in the score phase
constexpr int kRanges = 16;                          // ranges per token context (at most; a cluster of <= 16 blocks)
constexpr int kMinPerRange = 32;                     // short contexts use fewer ranges
constexpr int kMaxItemsPerThread = 2;                // value phase: (head, 8-dim chunk) items per thread
constexpr int kMaxItems = kMaxItemsPerThread * kNT;  // query heads x 8-dim chunks of a kv head
static_assert(kTPP == 2, "the score phase pairs two adjacent lanes per position");

// Shared-memory layout, the same on host and device: K chunks [nbuf][rows][row], V chunks
// [nbuf][rows][row] (bf16, row = head_dim + 8: no bank conflicts), q [group][hd], scores
// [group][kCP], the value phase's partial sums [splits][items][8], and the block's ranges' outputs
// [ranges][group][hd]. rows: the longest chunk any token of the launch can have (layout_context
// bounds it); a second buffer when a block has more than one chunk (prefetch of the next one).
struct ClusterLayout {
  int row, rows, nbuf;
  size_t k_off, v_off, q_off, s_off, r_off, o_off, bytes;
};
__host__ __device__ inline int range_length(int len) { return max(kMinPerRange, (len + kRanges - 1) / kRanges); }
__host__ __device__ inline int value_items(int hd, int group) { return group * (hd / 8); }
// The context the shared-memory layout is sized for: the launch's bound on its tokens' contexts
// (positions_bound: exact for eager steps, a power-of-two bucket for decode graphs), else
// max_context. A server's max_context (16384) would otherwise size every block's staging for
// 1024-position ranges (two 64-row buffers) where a 600-position context needs one of 38 rows.
__host__ __device__ inline int layout_context(const PagedAttentionCudaParams& p) {
  return p.positions_bound > 0 ? min(p.positions_bound, p.max_context) : p.max_context;
}
__host__ __device__ inline int value_splits(int items) { return items >= kNT ? 1 : kNT / items; }
__host__ __device__ inline ClusterLayout cluster_layout(int hd, int group, int ranges_per_block, int max_context) {
  ClusterLayout l{};
  l.row = hd + 8;
  const int per_max = range_length(max_context);
  l.rows = min(kCP, per_max);
  l.nbuf = ranges_per_block > 1 || per_max > kCP ? 2 : 1;
  const size_t buf = size_t(l.rows) * size_t(l.row) * 2;
  const int items = value_items(hd, group);
  l.k_off = 0;
  l.v_off = l.nbuf * buf;
  l.q_off = 2 * l.nbuf * buf;
  l.s_off = l.q_off + size_t(group) * hd * 4;
  l.r_off = l.s_off + size_t(group) * kCP * 4;
  l.o_off = l.r_off + size_t(value_splits(items)) * items * 8 * 4;
  l.bytes = l.o_off + size_t(ranges_per_block) * group * hd * 4;
  return l;
}

// Block b of a cluster of CL blocks takes ranges b * G .. b * G + G - 1 (G = kRanges / CL) of its
// (token, kv head). Every range is computed by the same code whatever CL (explicitly rounded float
// operations: no contraction left to the compiler), and the merge sums the ranges in order, so a
// row's bits do not depend on CL, the batch or the grid.
// trigger_early: the dependents (the o_proj GEMV) may launch once every block has waited for the
// prologue (early_launches(), kEarlyOProj), so that they load their first weights meanwhile.
template <int CL>
__global__ void __launch_bounds__(kNT, 5) cluster_attention_kernel(PagedAttentionCudaParams p, bool trigger_early) {
  constexpr int G = kRanges / CL;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ int32_t slots[2][kCP];
  __shared__ float m_run[kAttentionMaxGroup], l_run[kAttentionMaxGroup], alpha[kAttentionMaxGroup];
  __shared__ float m_set[G][kAttentionMaxGroup], l_set[G][kAttentionMaxGroup];
  __shared__ float wts[kRanges][kAttentionMaxGroup], l_rng[kRanges][kAttentionMaxGroup];
  __shared__ float l_all[kAttentionMaxGroup];
  cg::cluster_group cluster = cg::this_cluster();
  const int32_t b = static_cast<int32_t>(cluster.block_rank());
  const int32_t t = blockIdx.z, g = blockIdx.y, tid = threadIdx.x;
  const int32_t hd = p.head_dim, group = p.num_q_heads / p.num_kv_heads, cpr = hd / 8;
  // Positions, block tables and slots are step inputs (no kernel writes them): read before the wait.
  const int32_t pos = p.token_pos[t];
  const int32_t start = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int32_t len = pos - start + 1;
  const int32_t per = range_length(len);
  const int32_t active = (len + per - 1) / per;  // ranges with positions: 0 .. active-1
  const int32_t nchp = (per + kCP - 1) / kCP;    // chunks of a full range
  // This block's chunks: (range i, chunk c) at k = i * nchp + c, the valid ones a prefix 0 .. K-1.
  int32_t K = 0;
#pragma unroll
  for (int i = 0; i < G; ++i) {
    const int32_t r = b * G + i;
    if (r < active) K += (min(per, pos + 1 - (start + r * per)) + kCP - 1) / kCP;
  }
  const ClusterLayout L = cluster_layout(hd, group, G, layout_context(p));

  // A context past the layout's bound (positions_bound or max_context below a context): caller bug.
  if (min(per, kCP) > L.rows || (L.nbuf == 1 && K > 1)) __trap();
  bf16* ks = reinterpret_cast<bf16*>(smem_raw + L.k_off);
  bf16* vs = reinterpret_cast<bf16*>(smem_raw + L.v_off);
  float* qs = reinterpret_cast<float*>(smem_raw + L.q_off);
  float* sc = reinterpret_cast<float*>(smem_raw + L.s_off);
  float* red = reinterpret_cast<float*>(smem_raw + L.r_off);
  float* os = reinterpret_cast<float*>(smem_raw + L.o_off);  // [G][group][hd]
  const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
  const int64_t slot_stride = int64_t{p.num_kv_heads} * hd;
  const int64_t q_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * hd;
  const int32_t bs = p.block_size;
  // Chunk k: first position and length; whether it ends its range.
  auto chunk_first = [&](int32_t k) { return start + (b * G + k / nchp) * per + (k % nchp) * kCP; };
  auto chunk_len = [&](int32_t k) {
    const int32_t r0 = start + (b * G + k / nchp) * per;
    return min(kCP, min(per, pos + 1 - r0) - (k % nchp) * kCP);
  };
  auto load_slots = [&](int32_t k, int32_t buf) {
    if (tid < chunk_len(k)) {
      const int32_t position = chunk_first(k) + tid;
      slots[buf][tid] = table[position / bs] * bs + position % bs;
    }
  };
  const int32_t lane = tid & 31, warp = tid >> 5;
  if (K > 0) load_slots(0, 0);
  // The smallest position of the token's sequence among the launch's tokens: this step writes the
  // cache rows from there on (the previous kernel, the qkv prologue), every row below it was written
  // by an earlier step or launch. Chunk 0's rows below it are copied before the wait.
  __shared__ int32_t new_from_s;
  if (warp == 0) {
    const int32_t seq = p.token_seq[t];
    int32_t lo = pos;
    for (int32_t j = lane; j < p.num_tokens; j += 32) {
      if (p.token_seq[j] == seq) lo = min(lo, p.token_pos[j]);
    }
    lo = __reduce_min_sync(0xffffffffu, lo);
    if (lane == 0) new_from_s = lo;
  }
  __syncthreads();  // slots[0], new_from_s
  const int32_t split0 = K > 0 ? max(0, min(chunk_len(0), new_from_s - chunk_first(0))) : 0;

  // Value phase: thread -> items (head, 8-dim chunk) and a split of the chunk's positions.
  const int32_t items = value_items(hd, group);
  const int32_t splits = value_splits(items);
  const int32_t split = items >= kNT ? 0 : tid / items;
  int32_t item[kMaxItemsPerThread];
  item[0] = items >= kNT ? tid : (split < splits ? tid - split * items : -1);
  item[1] = items >= kNT && tid + kNT < items ? tid + kNT : -1;
  float acc[kMaxItemsPerThread][8];

  const bf16* kbase = static_cast<const bf16*>(p.k_cache) + int64_t{g} * hd;
  const bf16* vbase = static_cast<const bf16*>(p.v_cache) + int64_t{g} * hd;
  const int32_t chunk_elems = L.rows * L.row;
  // Copies rows r0 .. r1-1 of the chunk whose slots are slots[buf] into buffer buf: K rows, then V
  // rows (commit: as two groups).
  auto copy_rows = [&](int32_t buf, int32_t r0, int32_t r1, bool commit) {
    for (int32_t i = tid; i < (r1 - r0) * cpr; i += kNT) {
      const int32_t r = r0 + i / cpr, c = i % cpr;
      cp_async16(ks + buf * chunk_elems + r * L.row + 8 * c, kbase + int64_t{slots[buf][r]} * slot_stride + 8 * c);
    }
    if (commit) cp_async_commit();
    for (int32_t i = tid; i < (r1 - r0) * cpr; i += kNT) {
      const int32_t r = r0 + i / cpr, c = i % cpr;
      cp_async16(vs + buf * chunk_elems + r * L.row + 8 * c, vbase + int64_t{slots[buf][r]} * slot_stride + 8 * c);
    }
    if (commit) cp_async_commit();
  };
  auto issue = [&](int32_t k, int32_t buf) { copy_rows(buf, 0, chunk_len(k), true); };
  if (K > 0) copy_rows(0, 0, split0, false);  // joins chunk 0's K group
  pdl_wait();
  if (trigger_early) pdl_launch_dependents();

  if (K > 0) {
    if (p.fused_prologue) {
      // The folded qkv prologue: a warp per query head of the group, into q's place; the block holding
      // the token's position also forms the kv head's K and V rows and writes them to the cache
      // (read back below with the other rows: the same bf16 values as from the prologue kernel).
      const bool owner = b == (active - 1) / G;
      const int32_t tasks = group + (owner ? 2 : 0);
      for (int32_t task = warp; task < tasks; task += kNT / 32) {
        if (task < group) {
          qkv_head_warp(p.prologue, t, 0, g * group + task, qs + task * hd);
        } else {
          qkv_head_warp(p.prologue, t, task - group + 1, g, red + (task - group) * hd);
        }
      }
      __syncthreads();
      if (owner) {
        const int32_t slot = p.prologue.slot_mapping[t];
        if (slot >= 0) {
          const int64_t base = int64_t{slot} * slot_stride + int64_t{g} * hd;
          for (int32_t i = tid; i < hd; i += kNT) {
            store_from_float(p.prologue.k_cache, p.prologue.kv_dtype, base + i, red[i]);
            store_from_float(p.prologue.v_cache, p.prologue.kv_dtype, base + i, red[hd + i]);
          }
        }
        __threadfence();
        __syncthreads();
      }
    } else {
      for (int32_t i = tid; i < group * hd / 4; i += kNT) cp_async16(qs + 4 * i, p.q + q_base + 4 * i);
    }
    copy_rows(0, split0, chunk_len(0), true);  // q and the early rows join chunk 0's K group
    for (int32_t k = 0; k < K; ++k) {
      const int32_t buf = k & 1, n = chunk_len(k), c = k % nchp, i_range = k / nchp;
      const bool next = k + 1 < K;
      const bool range_end = !next || (k + 1) % nchp == 0;
      if (c == 0) {  // a new range: fresh softmax state
        if (tid < group) {
          m_run[tid] = -INFINITY;
          l_run[tid] = 0.0f;
        }
#pragma unroll
        for (int q = 0; q < kMaxItemsPerThread; ++q)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[q][e] = 0.0f;
      }
      if (next) {
        load_slots(k + 1, buf ^ 1);
        __syncthreads();
        issue(k + 1, buf ^ 1);
        cp_async_wait<3>();  // K of chunk k (groups: K_k V_k K_k+1 V_k+1)
      } else {
        cp_async_wait<1>();
      }
      __syncthreads();

      // Scores: kTPP adjacent threads per position, 8-dim chunks interleaved, fixed-order sum.
      {
        const int32_t pl = tid / kTPP, qq = tid % kTPP;
        float s[kAttentionMaxGroup];
#pragma unroll
        for (int h = 0; h < kAttentionMaxGroup; ++h) s[h] = 0.0f;
        if (pl < n) {
          const bf16* krow = ks + buf * chunk_elems + pl * L.row;
          for (int32_t c8 = qq; c8 < cpr; c8 += kTPP) {
            float kf[8];
            load8(krow + 8 * c8, kf);
#pragma unroll
            for (int h = 0; h < kAttentionMaxGroup; ++h) {
              if (h < group) {
                const float4 a = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c8);
                const float4 d = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c8 + 4);
                float x = __fmul_rn(a.x, kf[0]);
                x = __fmaf_rn(a.y, kf[1], x);
                x = __fmaf_rn(a.z, kf[2], x);
                x = __fmaf_rn(a.w, kf[3], x);
                x = __fmaf_rn(d.x, kf[4], x);
                x = __fmaf_rn(d.y, kf[5], x);
                x = __fmaf_rn(d.z, kf[6], x);
                x = __fmaf_rn(d.w, kf[7], x);
                s[h] = __fadd_rn(s[h], x);
              }
            }
          }
        }
#pragma unroll
        for (int h = 0; h < kAttentionMaxGroup; ++h) {
          if (h < group) {
            s[h] = __fadd_rn(s[h], __shfl_xor_sync(0xffffffffu, s[h], 1));
          }
        }
        if (pl < n && qq == 0) {
#pragma unroll
          for (int h = 0; h < kAttentionMaxGroup; ++h) {
            if (h < group) sc[h * kCP + pl] = __fmul_rn(s[h], p.scale);
          }
        }
      }
      __syncthreads();

      // Online softmax over the range's chunks, one warp per head.
      for (int32_t h = warp; h < group; h += kNT / 32) {
        const float m_old = m_run[h];
        float mc = -INFINITY;
        for (int32_t j = lane; j < n; j += 32) mc = fmaxf(mc, sc[h * kCP + j]);
        mc = warp_max(mc);
        const float m_new = fmaxf(m_old, mc);
        float l = 0.0f;
        for (int32_t j = lane; j < n; j += 32) {
          const float e = expf(__fsub_rn(sc[h * kCP + j], m_new));
          sc[h * kCP + j] = e;
          l = __fadd_rn(l, e);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) l = __fadd_rn(l, __shfl_xor_sync(0xffffffffu, l, o));
        if (lane == 0) {
          const float a = expf(__fsub_rn(m_old, m_new));
          alpha[h] = a;
          l_run[h] = __fmaf_rn(l_run[h], a, l);
          m_run[h] = m_new;
        }
      }
      if (next) {
        cp_async_wait<2>();  // V of chunk k
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();

      // Values: acc = acc * alpha + sum_j p_j V_j over this thread's split of the chunk.
      const bf16* vchunk = vs + buf * chunk_elems;
#pragma unroll
      for (int q = 0; q < kMaxItemsPerThread; ++q) {
        if (item[q] < 0) continue;
        const int32_t h = item[q] / cpr, cc = item[q] - h * cpr;
        const float a = alpha[h];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[q][e] = __fmul_rn(acc[q][e], a);
        for (int32_t j = split; j < n; j += splits) {
          const float w = sc[h * kCP + j];
          float vf[8];
          load8(vchunk + j * L.row + 8 * cc, vf);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[q][e] = __fmaf_rn(w, vf[e], acc[q][e]);
        }
      }
      if (range_end) {  // the range's o (relative to its max): splits summed in order
#pragma unroll
        for (int q = 0; q < kMaxItemsPerThread; ++q) {
          if (item[q] < 0) continue;
          float* r = red + (int64_t{split} * items + item[q]) * 8;
          *reinterpret_cast<float4*>(r) = make_float4(acc[q][0], acc[q][1], acc[q][2], acc[q][3]);
          *reinterpret_cast<float4*>(r + 4) = make_float4(acc[q][4], acc[q][5], acc[q][6], acc[q][7]);
        }
        __syncthreads();
        for (int32_t it = tid; it < items; it += kNT) {
          float o[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) o[e] = red[int64_t{it} * 8 + e];
          for (int32_t sp = 1; sp < splits; ++sp) {
            const float* r = red + (int64_t{sp} * items + it) * 8;
#pragma unroll
            for (int e = 0; e < 8; ++e) o[e] = __fadd_rn(o[e], r[e]);
          }
          const int32_t h = it / cpr, cc = it - h * cpr;
          float* dst = os + (int64_t{i_range} * group + h) * hd + 8 * cc;
          *reinterpret_cast<float4*>(dst) = make_float4(o[0], o[1], o[2], o[3]);
          *reinterpret_cast<float4*>(dst + 4) = make_float4(o[4], o[5], o[6], o[7]);
        }
        if (tid < group) {
          m_set[i_range][tid] = m_run[tid];
          l_set[i_range][tid] = l_run[tid];
        }
      }
      __syncthreads();  // the chunk's buffers, scores, alpha and partial sums are free
    }
  }
  pdl_launch_dependents();  // late: only the merge remains
  cluster.sync();           // every range's (m, l, o) is visible to the cluster

  // Merge: per head, the weight of each range; then a slice of the outputs per block. Remote reads
  // are issued together (one per thread, or all ranges of an output before their sum): a loop of
  // dependent distributed-shared-memory round trips would serialise ~16 of them.
  for (int32_t i = tid; i < active * group; i += kNT) {
    const int32_t a = i / group, h = i - a * group;
    const int32_t off = (a % G) * kAttentionMaxGroup + h;
    wts[a][h] = cluster.map_shared_rank(&m_set[0][0], a / G)[off];
    l_rng[a][h] = cluster.map_shared_rank(&l_set[0][0], a / G)[off];
  }
  __syncthreads();
  if (tid < group) {
    float m = -INFINITY;
    for (int32_t a = 0; a < active; ++a) m = fmaxf(m, wts[a][tid]);
    float l = 0.0f;
    for (int32_t a = 0; a < active; ++a) {
      const float w = expf(__fsub_rn(wts[a][tid], m));
      l = __fmaf_rn(w, l_rng[a][tid], l);
      wts[a][tid] = w;
    }
    l_all[tid] = l;
  }
  __syncthreads();
  const int32_t e4_count = group * hd / 4;
  for (int32_t e4 = tid * CL + b; e4 < e4_count; e4 += kNT * CL) {
    const int32_t h = 4 * e4 / hd;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int32_t a0 = 0; a0 < active; a0 += 4) {  // four ranges' loads in flight, summed in order
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t a = a0 + u;
        if (a < active) {
          v[u] = reinterpret_cast<const float4*>(cluster.map_shared_rank(os, a / G) + int64_t{a % G} * group * hd)[e4];
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int32_t a = a0 + u;
        if (a < active) {
          const float w = wts[a][h];
          o.x = __fmaf_rn(w, v[u].x, o.x);
          o.y = __fmaf_rn(w, v[u].y, o.y);
          o.z = __fmaf_rn(w, v[u].z, o.z);
          o.w = __fmaf_rn(w, v[u].w, o.w);
        }
      }
    }
    const float l = l_all[h];
    const int64_t i = q_base + 4 * int64_t{e4};
    store_from_float(p.out, p.out_dtype, i, __fdiv_rn(o.x, l));
    store_from_float(p.out, p.out_dtype, i + 1, __fdiv_rn(o.y, l));
    store_from_float(p.out, p.out_dtype, i + 2, __fdiv_rn(o.z, l));
    store_from_float(p.out, p.out_dtype, i + 3, __fdiv_rn(o.w, l));
  }
  cluster.sync();  // no block leaves while another reads its shared memory
}

// cluster_attention_kernel for clusters of `cl` blocks (null for other sizes).
using ClusterAttentionKernel = void (*)(PagedAttentionCudaParams, bool);
ClusterAttentionKernel kernel_for(int cl) {
  switch (cl) {
    case 1: return cluster_attention_kernel<1>;
    case 2: return cluster_attention_kernel<2>;
    case 4: return cluster_attention_kernel<4>;
    case 8: return cluster_attention_kernel<8>;
    case 16: return cluster_attention_kernel<16>;
    default: return nullptr;
  }
}

// Whether cluster_attention_kernel with clusters of `cl` blocks runs on the current device with
// `smem` bytes per block (cluster_probe.cuh: decided once, before any graph capture).
bool runnable_cached(int cl, size_t smem) {
  const void* kernel = reinterpret_cast<const void*>(kernel_for(cl));
  if (!kernel) return false;
  return cluster_runnable(kernel, cl, kNT, smem, false);
}

// Target grid, in blocks per multiprocessor (AURORA_ATTENTION_FILL, default 2): the cluster size
// halves from 16 while (tokens x kv heads x size) exceeds it.
int attention_fill() {
  static const int fill = [] {
    const char* v = std::getenv("AURORA_ATTENTION_FILL");
    const int f = v ? std::atoi(v) : 0;
    return f > 0 ? f : 2;
  }();
  return fill;
}

// AURORA_ATTENTION_CLUSTER=1|2|4|8|16: the cluster size of launches sized by the grid (to compare;
// default: from attention_fill()).
int forced_cluster() {
  static const int cl = [] {
    const char* v = std::getenv("AURORA_ATTENTION_CLUSTER");
    const int c = v ? std::atoi(v) : 0;
    return c == 1 || c == 2 || c == 4 || c == 8 || c == 16 ? c : 0;
  }();
  return cl;
}

}  // namespace

bool cluster_attention_for(int32_t num_tokens) {
  // -1: never, 0: up to kClusterAttentionAutoTokens tokens, 1: always.
  static const int mode = [] {
    if (legacy_attention()) return -1;
    const char* v = std::getenv("AURORA_CLUSTER_ATTENTION");
    if (v && v[0] == '0') return -1;
    if (v && v[0] == '1') return 1;
    return 0;
  }();
  return mode > 0 || (mode == 0 && num_tokens <= kClusterAttentionAutoTokens);
}

bool launch_cluster_attention(const PagedAttentionCudaParams& p, cudaStream_t stream) {
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  if (p.num_tokens > 65535 || p.num_kv_heads > 65535 || !cluster_attention_supports(p.head_dim, group)) return false;
  const int64_t heads = int64_t{p.num_tokens} * p.num_kv_heads;
  int cl = p.cluster_blocks > 0 ? p.cluster_blocks : kRanges;
  if (p.cluster_blocks <= 0 && forced_cluster()) {
    cl = forced_cluster();
  } else if (p.cluster_blocks <= 0) {  // sized by the grid
    while (cl > 1 && heads * cl > int64_t{attention_fill()} * sm_count()) cl /= 2;
  }
  size_t smem = 0;
  for (; cl <= kRanges; cl *= 2) {  // larger clusters hold fewer ranges per block
    smem = cluster_layout(p.head_dim, group, kRanges / cl, layout_context(p)).bytes;
    if (runnable_cached(cl, smem)) break;
  }
  if (cl > kRanges) return false;
  // Programmatic dependent launch as launch_pdl_hinted decides for a decode-sized grid; a device
  // that refuses it together with clusters gets plain launches from then on.
  static bool pdl_refused = false;
  const int mode = pdl_mode();
  launch_clusters(
      pdl_refused, mode == 1 || (mode >= 2 && heads <= sm_count()), kernel_for(cl),
      dim3(static_cast<unsigned>(cl), static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(p.num_tokens)), cl,
      kNT, smem, stream, p, (early_launches() & kEarlyOProj) != 0);
  return true;
}

}  // namespace aurora::kernels::cuda::detail

namespace aurora::kernels::cuda {

bool cluster_attention_supports(int32_t head_dim, int32_t group) {
  return detail::value_items(head_dim, group) <= detail::kMaxItems;
}

}  // namespace aurora::kernels::cuda
