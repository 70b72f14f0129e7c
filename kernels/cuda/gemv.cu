// Grouped small-batch GEMV on tensor cores (decode projections and routed experts) and the
// float32 linear twin on CUDA cores.
#include "aurora/kernels/cuda/gemv.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "grouped_gemm.cuh"
#include "mma.cuh"
#include "moe_combine.cuh"
#include "route_token.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kTileRows = 16;  // mma M
constexpr int kChunk = 32;     // k per thread-quad load: 4 threads x 8 bf16

using detail::mma_16816;

__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Fragment mapping (k permuted consistently for A and B, which a dot product allows): in a chunk of
// 32 k, thread (g = lane / 4, q = lane % 4) loads elements [8q, 8q + 8) of weight rows g and g + 8
// and of token g's input row; mma step s in {0, 1} takes elements 4s..4s+3 of those 8 as its
// k-slots {2q, 2q+1, 2q+8, 2q+9}: a0/a2 from row g, a1/a3 from row g + 8, b0/b1 from the token.
// WARPS warps split the block's k range; each keeps U * TILES * 2 16-byte weight loads in flight
// per iteration. Small blocks (4 warps, 16 KB in flight, ~70 registers: 7 blocks per
// multiprocessor) measured faster on the H200 than 8 warps with twice the loads in flight (~105
// registers: 2 blocks). blockIdx.z is the k split (split k: see gemv.hpp); `cps` chunks per split.
// Dynamic shared memory: the split-k reduction [WARPS][TILES][NB][4][32] floats, then (RMSNorm
// prologue) the normalised bf16 input rows of this block's k range [positions][cps * kChunk].
// Decode instances keep 7 (NB = 1) or 6 (NB = 2) 4-warp blocks per multiprocessor: the register cap
// that gives (72, 80) is what the loop needs; the prologues must not raise it.
// PF (prefetch, decode instances): each iteration issues the next iteration's
// weight and input loads before its own products, so a warp always has a round of loads in flight
// (long-k launches, e.g. Mixtral's expert down projection, k 14336, were latency-bound: one round
// trip per iteration); the same products in the same order, so the same bits. Twice the load
// registers: 4 (NB = 1) or 3 (NB = 2) blocks per multiprocessor.
template <int NB, int WARPS, bool PF = false>
constexpr int kMinBlocks = WARPS == 4 ? (PF        ? (NB == 1 ? 4 : 3)
                                         : NB == 1 ? 7
                                         : NB == 2 ? 6
                                                   : 1)
                                      : 1;

// Where a GEMV block's work comes from: Index::x() (tile * z + position chunk), slot(), split(),
// splits() and nx() (the tiles of a slot: the split-k tickets' and workspace's index) are blockIdx
// and gridDim in grouped_gemv_kernel (GridIndex: read where used, as special registers) and an
// item's tile and slot in the fused expert FFN (ItemIndex). Hooks: how it waits for its inputs
// (wait()) and lets its dependents launch (trigger()).
struct GridIndex {
  __device__ int x() const { return static_cast<int>(blockIdx.x); }
  __device__ int slot() const { return static_cast<int>(blockIdx.y); }
  __device__ int split() const { return static_cast<int>(blockIdx.z); }
  __device__ int splits() const { return static_cast<int>(gridDim.z); }
  __device__ int nx() const { return static_cast<int>(gridDim.x); }
};
struct ItemIndex {
  int tile, item_slot, tiles;
  __device__ int x() const { return tile; }
  __device__ int slot() const { return item_slot; }
  __device__ int split() const { return 0; }
  __device__ int splits() const { return 1; }
  __device__ int nx() const { return tiles; }
};
// Where a block's group (slot -> group, the group's positions, each position's input row) comes
// from: the launch's device arrays (ParamGroups, written by the router), or a hook's own routing
// (SelfRouteHooks).
struct ParamGroups {
  __device__ bool inactive(const GroupedGemvParams& p, int slot) const { return p.num_active && slot >= *p.num_active; }
  __device__ int group(const GroupedGemvParams& p, int slot) const {
    return p.active_groups ? p.active_groups[slot] : slot;
  }
  __device__ int2 positions(const GroupedGemvParams& p, int /*slot*/, int group) const {  // first, count
    if (!p.group_offsets) return make_int2(0, p.num_positions);
    const int first = p.group_offsets[group];
    return make_int2(first, p.group_offsets[group + 1] - first);
  }
  __device__ int64_t x_row(const GroupedGemvParams& p, int /*slot*/, int pos) const {
    return p.x_rows ? p.x_rows[pos] / p.x_row_div : pos;
  }
};
struct PdlHooks : ParamGroups {
  __device__ void wait() const { detail::pdl_wait(); }
  __device__ void trigger() const { detail::pdl_launch_dependents(); }
};

// Every thread of the block: thread 0 polls *counter until it reaches target, the block meets after
// (the acquire load and the barrier make the producers' writes, fenced before their increments,
// visible to every thread).
__device__ void poll_until(const int32_t* counter, int32_t target) {
  if (threadIdx.x == 0) {
    for (;;) {
      int32_t v;
      asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(counter) : "memory");
      if (v >= target) break;
      __nanosleep(32);
    }
  }
  __syncthreads();
}

// The routing of a self-routed launch (GroupedGemvParams::self_route), in shared memory: every
// group slot's expert, positions and tokens, as the router's permutation orders them.
constexpr int kSelfRouteMaxSlots = kGemvNormMaxPositions * kMaxTopK;
struct SelfRouteShared {
  float probs[kGemvNormMaxPositions][kSelfRouteMaxExperts];  // route_token's scratch
  int32_t ids[kGemvNormMaxPositions][kMaxTopK];
  float weights[kGemvNormMaxPositions][kMaxTopK];                     // (route_token's; unused)
  uint32_t chosen[kGemvNormMaxPositions][kSelfRouteMaxExperts / 32];  // each token's experts, as bits
  int32_t active;
  int32_t group[kSelfRouteMaxSlots], first[kSelfRouteMaxSlots], count[kSelfRouteMaxSlots];
  int32_t rows[kSelfRouteMaxSlots][kGemvNormMaxPositions];  // a slot's positions' tokens, ascending
};

// Every thread of the block: waits until every logit is written (*ready >= num_experts), then warp
// t routes token t with route_token (the router's experts from the same logits), and thread i
// derives slot i as the router's permutation gives it: the active experts are the chosen ones in
// ascending id, slot i's expert is the i-th of them, its positions start after every chosen (token,
// expert) pair of a lower id and hold its tokens in ascending order.
__device__ void self_route_table(const GroupedGemvParams::SelfRoute& r, SelfRouteShared& s) {
  const int T = r.num_tokens, E = r.num_experts, K = r.top_k, words = (E + 31) / 32;
  for (int i = threadIdx.x; i < T * words; i += blockDim.x) s.chosen[i / words][i % words] = 0u;
  poll_until(r.ready, E);
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if (warp < T) {
    detail::route_token(r.logits + static_cast<int64_t>(warp) * E, E, K, false, s.probs[warp], s.ids[warp],
                        s.weights[warp]);
  }
  __syncthreads();
  if (static_cast<int>(threadIdx.x) < T * K) {
    const int t = threadIdx.x / K, e = s.ids[t][threadIdx.x % K];
    atomicOr(&s.chosen[t][e / 32], 1u << (e % 32));
  }
  __syncthreads();
  const int slot = threadIdx.x;
  if (slot < min(T * K, E)) {
    int active = 0, group = -1;
    for (int w = 0; w < words; ++w) {
      uint32_t any = 0;
      for (int t = 0; t < T; ++t) any |= s.chosen[t][w];
      const int n = __popc(any);
      if (group < 0 && slot < active + n) {
        for (int skip = slot - active; skip > 0; --skip) any &= any - 1;  // the (slot - active)-th bit
        group = w * 32 + __ffs(any) - 1;
      }
      active += n;
    }
    if (slot == 0) s.active = active;
    s.group[slot] = group;
    if (group >= 0) {
      int first = 0, count = 0;
      for (int t = 0; t < T; ++t) {
        for (int w = 0; w < group / 32; ++w) first += __popc(s.chosen[t][w]);
        const uint32_t word = s.chosen[t][group / 32], bit = 1u << (group % 32);
        first += __popc(word & (bit - 1u));
        if (word & bit) s.rows[slot][count++] = t;
      }
      s.first[slot] = first;
      s.count[slot] = count;
    }
  }
  __syncthreads();
}

// Groups from a self-routed table (the launch's x_rows only says whether inputs are gathered).
struct TableGroups {
  SelfRouteShared* table;
  __device__ bool inactive(const GroupedGemvParams&, int slot) const { return slot >= table->active; }
  __device__ int group(const GroupedGemvParams&, int slot) const { return table->group[slot]; }
  __device__ int2 positions(const GroupedGemvParams&, int slot, int) const {
    return make_int2(table->first[slot], table->count[slot]);
  }
  __device__ int64_t x_row(const GroupedGemvParams& p, int slot, int pos) const {
    return p.x_rows ? table->rows[slot][pos - table->first[slot]] : pos;
  }
};

// Groups from the router's arrays, or (table set) from a self-routed table.
struct RoutedGroups {
  SelfRouteShared* table = nullptr;
  __device__ bool inactive(const GroupedGemvParams& p, int slot) const {
    return table ? TableGroups{table}.inactive(p, slot) : ParamGroups{}.inactive(p, slot);
  }
  __device__ int group(const GroupedGemvParams& p, int slot) const {
    return table ? TableGroups{table}.group(p, slot) : ParamGroups{}.group(p, slot);
  }
  __device__ int2 positions(const GroupedGemvParams& p, int slot, int group) const {
    return table ? TableGroups{table}.positions(p, slot, group) : ParamGroups{}.positions(p, slot, group);
  }
  __device__ int64_t x_row(const GroupedGemvParams& p, int slot, int pos) const {
    return table ? TableGroups{table}.x_row(p, slot, pos) : ParamGroups{}.x_row(p, slot, pos);
  }
};

// One block of the grouped GEMV; true when it stored its tile's outputs (false: nothing to do, or a
// split of k that another split finishes). COHERENT_X: the inputs were written by other blocks
// of the same kernel (the fused expert FFN's down items read its gate_up items' output), so they
// load through L2 (ld.global.cg) instead of the read-only path.
// SG > 1 (in-block split k): the block is SG groups of WARPS warps, group g doing split g of the
// tile's k as a block of split k would (Index::splits() is then 1), and the block adds the groups'
// partial sums in split order, as the last split's block adds the workspace's: the same bits,
// without the workspace round trip and the ticket.
template <int TILES, int NB, int WARPS, bool NORM, bool PF, bool COHERENT_X, class Index, class Hooks, int SG = 1>
__device__ __forceinline__ bool gemv_block(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, int z,
                                           int cps, const Index& bi, const Hooks& hooks) {
  static_assert(SG == 1 || !NORM, "in-block split k: no RMSNorm prologue");
  constexpr int kThreads = WARPS * SG * 32;
  constexpr int U = (WARPS >= 8 && NB < 8 ? 8 : 4) / TILES;  // chunks in flight per iteration
  extern __shared__ float red[];                             // [WARPS][TILES][NB][4][32]
  __shared__ float scratch[33];
  __shared__ int32_t is_last;
  const int lane = threadIdx.x & 31, block_warp = threadIdx.x >> 5;
  const int warp = block_warp % WARPS;  // in its split group
  const int g = lane >> 2, q = lane & 3;
  const int n = p.n, k = p.k;
  const int tile = bi.x() / z, chunk = bi.x() % z;
  const int split = SG > 1 ? block_warp / WARPS : bi.split(), splits = bi.splits();
  const int row0 = tile * kTileRows;
  const int chunks = (k + kChunk - 1) / kChunk;
  const int s_begin = split * cps, s_end = min(chunks, s_begin + cps);
  const int per_warp = (s_end - s_begin + WARPS - 1) / WARPS;
  const int c_begin = s_begin + warp * per_warp;
  const int c_end = min(s_end, c_begin + per_warp);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const bool grouped = p.group_offsets || p.active_groups || p.num_active;

  const bf16* wrow[TILES][2];
  uint4 a[U][TILES][2];
  auto set_rows = [&](int group) {
    const bf16* W = p.weight + static_cast<int64_t>(group) * p.weight_group_stride;
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = row0 + g + 8 * h;
        wrow[tt][h] = r < n ? W + (static_cast<int64_t>(tt) * n + r) * k : nullptr;
      }
    }
  };
  auto load_a = [&](int c) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = (c + u) * kChunk + q * 8;
      const bool in_range = c + u < c_end && kk < k;
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          a[u][tt][h] = in_range && wrow[tt][h] ? detail::ld_stream_u4(wrow[tt][h] + kk) : zero;
    }
  };
  // A dense matrix is known before the previous kernel ends: its first weights load before the wait
  // (and before the RMSNorm prologue's reads of the input). So are routed experts whose group
  // arrays an earlier launch than the previous one wrote (groups_before_wait).
  const bool early_groups = !NORM && grouped && p.groups_before_wait;
  if (!grouped) {
    set_rows(0);
    if (chunk == 0 && c_begin < c_end) load_a(c_begin);
  }
  if (!early_groups) hooks.wait();

  const int slot = bi.slot();
  if (hooks.inactive(p, slot)) return false;
  const int group = hooks.group(p, slot);
  const int2 positions = hooks.positions(p, slot, group);
  const int pos_begin = positions.x, pos_count = positions.y;
  // Position chunks of one weight tile are consecutive blocks, so the tile's later reads hit L2.
  const int first = chunk * (NB * 8);
  if (first >= pos_count) return false;
  const int npos = min(NB * 8, pos_count - first);
  const int nb_used = (npos + 7) / 8;
  const bool preloaded = (!grouped || early_groups) && chunk == 0;
  if (grouped) set_rows(group);
  if (early_groups) {
    if (chunk == 0 && c_begin < c_end) load_a(c_begin);
    hooks.wait();  // the inputs (x) come from the previous launch
  }

  // RMSNorm prologue: this block's k range of each of its rows, normalised, as bf16 in shared memory.
  bf16* xs = reinterpret_cast<bf16*>(red + WARPS * TILES * NB * 128);
  const int kslice = cps * kChunk;
  const int k0 = s_begin * kChunk, k1 = min(k, s_end * kChunk);
  if constexpr (NORM) {
    const int64_t nstride = p.norm_x_stride ? p.norm_x_stride : k;
    for (int i = 0; i < npos; ++i) {
      const float* xr = p.norm_x + hooks.x_row(p, slot, pos_begin + first + i) * nstride;
      float ss = 0.0f;
#pragma unroll 4
      for (int e = threadIdx.x * 4; e < k; e += kThreads * 4) {
        const float4 v = *reinterpret_cast<const float4*>(xr + e);
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
      const float inv_rms = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(k) + p.norm_eps);
      for (int e = k0 + threadIdx.x * 8; e < k1; e += kThreads * 8) {
        const float4 x0 = *reinterpret_cast<const float4*>(xr + e), x1 = *reinterpret_cast<const float4*>(xr + e + 4);
        const float4 w0 = __ldg(reinterpret_cast<const float4*>(p.norm_weight + e));
        const float4 w1 = __ldg(reinterpret_cast<const float4*>(p.norm_weight + e + 4));
        const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        const float wv[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
        __align__(16) bf16 out[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) out[j] = __float2bfloat16(__fmul_rn(wv[j], __fmul_rn(xv[j], inv_rms)));
        *reinterpret_cast<uint4*>(xs + static_cast<int64_t>(i) * kslice + (e - k0)) =
            *reinterpret_cast<const uint4*>(out);
      }
    }
    __syncthreads();
  }

  const bf16* xrow[NB];
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    const int i = nb * 8 + g;
    xrow[nb] = nullptr;
    if (i < npos) {
      if constexpr (NORM) {
        xrow[nb] = xs + static_cast<int64_t>(i) * kslice - k0;  // indexed by absolute k below
      } else {
        xrow[nb] = p.x + hooks.x_row(p, slot, pos_begin + first + i) * x_stride;
      }
    }
  }

  float acc[TILES][NB][4];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nb][j] = 0.0f;

  // The products of one iteration: weights aa (chunks c .. c + U - 1), inputs bx[u][nb] (16 bytes of
  // position nb * 8 + g's row), in a fixed order (u, nb, s, tt).
  auto products = [&](const uint4(&aa)[U][TILES][2], const uint4(&bx)[U][NB]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        if (nb < nb_used) {
          const uint4 b = bx[u][nb];
#pragma unroll
          for (int s = 0; s < 2; ++s) {
#pragma unroll
            for (int tt = 0; tt < TILES; ++tt) {
              mma_16816(acc[tt][nb], word(aa[u][tt][0], 2 * s), word(aa[u][tt][1], 2 * s),
                        word(aa[u][tt][0], 2 * s + 1), word(aa[u][tt][1], 2 * s + 1), word(b, 2 * s),
                        word(b, 2 * s + 1));
            }
          }
        }
      }
    }
  };
  auto load_x = [&](int c, uint4(&xb)[U][NB]) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = (c + u) * kChunk + q * 8;
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        xb[u][nb] = zero;
        if (nb < nb_used && c + u < c_end && kk < k && xrow[nb]) {
          if constexpr (NORM) {
            xb[u][nb] = *reinterpret_cast<const uint4*>(xrow[nb] + kk);
          } else {
            xb[u][nb] = COHERENT_X ? __ldcg(reinterpret_cast<const uint4*>(xrow[nb] + kk))
                                   : __ldg(reinterpret_cast<const uint4*>(xrow[nb] + kk));
          }
        }
      }
    }
  };
  if constexpr (PF) {
    if (!preloaded && c_begin < c_end) load_a(c_begin);
    uint4 xb[U][NB];
    load_x(c_begin, xb);
    for (int c = c_begin; c < c_end; c += U) {
      uint4 ca[U][TILES][2], cx[U][NB];
#pragma unroll
      for (int u = 0; u < U; ++u) {
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt) ca[u][tt][0] = a[u][tt][0], ca[u][tt][1] = a[u][tt][1];
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) cx[u][nb] = xb[u][nb];
      }
      if (c + U < c_end) {
        load_a(c + U);
        load_x(c + U, xb);
      }
      products(ca, cx);
    }
  } else {  // (the loop before PF, unchanged: its registers decide the decode instances' occupancy)
    for (int c = c_begin; c < c_end; c += U) {
      if (!(preloaded && c == c_begin)) load_a(c);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int kk = (c + u) * kChunk + q * 8;
        const bool in_range = c + u < c_end && kk < k;
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          if (nb < nb_used) {
            uint4 b = zero;
            if (in_range && xrow[nb]) {
              if constexpr (NORM) {
                b = *reinterpret_cast<const uint4*>(xrow[nb] + kk);
              } else {
                b = COHERENT_X ? __ldcg(reinterpret_cast<const uint4*>(xrow[nb] + kk))
                               : __ldg(reinterpret_cast<const uint4*>(xrow[nb] + kk));
              }
            }
#pragma unroll
            for (int s = 0; s < 2; ++s) {
#pragma unroll
              for (int tt = 0; tt < TILES; ++tt) {
                mma_16816(acc[tt][nb], word(a[u][tt][0], 2 * s), word(a[u][tt][1], 2 * s), word(a[u][tt][0], 2 * s + 1),
                          word(a[u][tt][1], 2 * s + 1), word(b, 2 * s), word(b, 2 * s + 1));
              }
            }
          }
        }
      }
    }
  }

  hooks.trigger();  // late: only the reduction and the epilogue remain
  // Reduction over the block's warps in a fixed order.
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int j = 0; j < 4; ++j) red[(((block_warp * TILES + tt) * NB + nb) * 4 + j) * 32 + lane] = acc[tt][nb][j];
  __syncthreads();
  // Split k: this split's partial tile goes to the workspace; the last split to finish reduces.
  const int64_t tile_id = static_cast<int64_t>(slot) * bi.nx() + bi.x();
  float* ws = p.split_workspace + tile_id * splits * (TILES * NB * 128);
  if (splits > 1) {
    for (int e = threadIdx.x; e < NB * 128; e += kThreads) {
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt) {
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) s += red[((w * TILES + tt) * NB) * 128 + e];
        ws[(split * TILES + tt) * (NB * 128) + e] = s;
      }
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      const int32_t arrived = atomicAdd(p.split_tickets + tile_id, 1);
      is_last = arrived == splits - 1;
      if (is_last) p.split_tickets[tile_id] = 0;
    }
    __syncthreads();
    if (!is_last) return false;
    __threadfence();
  }
  for (int e = threadIdx.x; e < NB * 128; e += kThreads) {
    const int nb = e >> 7, j = (e >> 5) & 3, ln = e & 31;
    if (nb >= nb_used) continue;
    const int row = row0 + (ln >> 2) + 8 * (j >> 1);
    const int col = nb * 8 + (ln & 3) * 2 + (j & 1);
    if (row >= n || col >= npos) continue;
    float v[TILES];
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt) {
      float s = 0.0f;
      if (SG > 1) {
#pragma unroll
        for (int sp = 0; sp < SG; ++sp) {
          float part = 0.0f;
#pragma unroll
          for (int w = 0; w < WARPS; ++w) part += red[(((sp * WARPS + w) * TILES + tt) * NB + nb) * 128 + j * 32 + ln];
          s += part;
        }
      } else if (splits > 1) {
        for (int sp = 0; sp < splits; ++sp) s += __ldcg(ws + (sp * TILES + tt) * (NB * 128) + e);
      } else {
#pragma unroll
        for (int w = 0; w < WARPS; ++w) s += red[((w * TILES + tt) * NB + nb) * 128 + j * 32 + ln];
      }
      v[tt] = s;
    }
    const int64_t pos = pos_begin + first + col;
    const int64_t out = pos * y_stride + row;
    if constexpr (TILES == 2) {
      p.y_bf16[out] = __float2bfloat16(detail::silu(v[0]) * v[TILES - 1]);
    } else {
      const float b = p.bias ? p.bias[row] : 0.0f;
      if (p.epilogue == GemvEpilogue::kAccumulateF32) {
        p.y_f32[out] += v[0] + b;
      } else {
        p.y_f32[out] = v[0] + b;
      }
    }
  }
  return true;
}

template <int TILES, int NB, int WARPS, bool NORM, bool PF = false, int SG = 1>
__global__ void __launch_bounds__(WARPS * 32 * SG,
                                  (kMinBlocks<NB, WARPS, PF> / SG > 0 ? kMinBlocks<NB, WARPS, PF> / SG : 1))
    grouped_gemv_kernel(const __grid_constant__ GroupedGemvParams p, int64_t x_stride, int64_t y_stride, int z,
                        int cps) {
  gemv_block<TILES, NB, WARPS, NORM, PF, false, GridIndex, PdlHooks, SG>(p, x_stride, y_stride, z, cps, GridIndex{},
                                                                         PdlHooks{});
}

// The fused expert FFN (gemv.hpp, launch_expert_ffn). Its items wait on counters, not on the
// previous kernel (the kernel waits once, before its first item): gate_up tiles slot-major (0 ..
// gu_items - 1), then down tiles, slot-major.
struct FfnItems {
  int gu_tiles, dn_tiles, gu_items, total;
};

// A down tile's wait for its slot's gate_up tiles (poll_until); null count (gate_up tiles): no
// wait. After its main loop, a down tile whose block has no next item (next: the block's claim in
// shared memory, made before the item and visible since wait()'s barrier) lets the dependents
// launch (kEarlyQkv). Groups: the router's arrays, or the block's self-routed table (table set:
// the launch's gate_up.self_route).
struct CountHooks : RoutedGroups {
  const int32_t* count;
  int32_t target;
  const int* next = nullptr;  // or null: no early trigger
  int total = 0;
  __device__ void wait() const {
    if (count) poll_until(count, target);
  }
  __device__ void trigger() const {
    if (next && *next >= total) {     // the block's last item
      if (table) detail::pdl_wait();  // (self-routed: the router completes before the dependents launch)
      detail::pdl_launch_dependents();
    }
  }
};

// The self-routed gate_up's hooks: wait() routes (self_route_table); trigger() only after the
// router has completed (the next launches read its permutation before their own wait).
struct SelfRouteHooks : TableGroups {
  const GroupedGemvParams::SelfRoute* r;
  __device__ void wait() const { self_route_table(*r, *table); }
  __device__ void trigger() const {
    detail::pdl_wait();
    detail::pdl_launch_dependents();
  }
};

// The self-routed gate_up (launch_grouped_gemv with self_route): dispatch_nb's decode instance.
template <bool PF>
__global__ void __launch_bounds__(128, kMinBlocks<1, 4, PF>)
    self_routed_gate_up_kernel(const __grid_constant__ GroupedGemvParams p, int64_t x_stride, int cps) {
  __shared__ SelfRouteShared s;
  gemv_block<2, 1, 4, false, PF, false>(p, x_stride, p.n, 1, cps, GridIndex{}, SelfRouteHooks{{&s}, &p.self_route});
}

// The MoE combine of hidden rows [row0, row0 + 16) of every token (launch_moe_combine's arithmetic:
// detail::moe_combine_value over the token's choices sorted by expert id), by the block whose down
// tile of those rows finished last; the other experts' rows were written by other blocks of this
// launch (read through L2). order_s, w_s: shared [kExpertFfnMaxPositions][kMaxTopK] scratch.
__device__ void ffn_combine_rows(const MoeCombineCudaParams& c, int row0, int32_t (*order_s)[kMaxTopK],
                                 float (*w_s)[kMaxTopK]) {
  const int top_k = c.top_k;
  if (threadIdx.x < c.num_tokens) {  // thread t sorts token t's choices by expert id (stable)
    const int t = threadIdx.x;
    int32_t* order = order_s[t];
    detail::sort_by_expert(c.topk_ids + static_cast<int64_t>(t) * top_k, top_k, order);
    for (int n = 0; n < top_k; ++n) w_s[t][n] = c.topk_weights[static_cast<int64_t>(t) * top_k + order[n]];
  }
  __syncthreads();
  const int t = threadIdx.x / kTileRows, h = row0 + threadIdx.x % kTileRows;
  if (t < c.num_tokens && h < c.hidden) {
    const int64_t stride = c.expert_out_stride ? c.expert_out_stride : c.hidden;
    float v[kMaxTopK];
#pragma unroll
    for (int n = 0; n < kMaxTopK; ++n) {
      v[n] = 0.0f;
      if (n < top_k) {
        const int64_t item = static_cast<int64_t>(t) * top_k + order_s[t][n];
        v[n] = __ldcg(c.expert_out + static_cast<int64_t>(c.item_position[item]) * stride + h);
      }
    }
    float* x = c.x + static_cast<int64_t>(t) * c.hidden + h;
    *x = detail::moe_combine_value(*x, v, w_s[t], top_k, false, 0.0f, 0.0f);
  }
}

// The next item is taken from the queue while the current one runs (always safe: an item taken
// after a waiting one is a down tile, which nothing waits for). counters[0]: the queue;
// counters[1 + slot]: the slot's finished gate_up tiles; counters[1 + slots + tile]: the active
// slots' finished down tiles of a row tile (the combine). Both projections run the prefetching
// loop, 3 blocks per multiprocessor (166 registers; at 4 blocks, the standalone gate_up's occupancy,
// 200 bytes spilled and it measured slower on the H200, Mixtral-8x7B batch 1 8.71 vs 7.85 ms).
// early_trigger: a block triggers its dependents when its queue claim comes back empty (CountHooks),
// so that the next launch's blocks take the slots of the blocks that finish (kEarlyQkv).
__global__ void __launch_bounds__(128, 3)
    expert_ffn_kernel(const __grid_constant__ ExpertFfnCudaParams p, int64_t gu_x_stride, int64_t dn_x_stride,
                      int gu_cps, int dn_cps, FfnItems f, bool early_trigger) {
  __shared__ int next_item;
  __shared__ int32_t combine_last;
  __shared__ int32_t order_s[kExpertFfnMaxPositions][kMaxTopK];
  __shared__ float w_s[kExpertFfnMaxPositions][kMaxTopK];
  __shared__ SelfRouteShared route_s;
  // The routing and the inputs come from the previous kernels: wait for the router to complete, or
  // (self-routed) for its logits only, and route.
  SelfRouteShared* const table = p.gate_up.self_route.logits ? &route_s : nullptr;
  if (table) {
    self_route_table(p.gate_up.self_route, route_s);
  } else {
    detail::pdl_wait();
  }
  if (threadIdx.x == 0) next_item = atomicAdd(p.counters, 1);
  __syncthreads();
  int item = next_item;
  const int slots = p.gate_up.num_group_slots;
  while (item < f.total) {
    __syncthreads();  // every thread has read next_item; the last item's shared memory is free
    if (threadIdx.x == 0) next_item = atomicAdd(p.counters, 1);
    if (item < f.gu_items) {
      const int slot = item / f.gu_tiles, tile = item - slot * f.gu_tiles;
      gemv_block<2, 1, 4, false, true, false>(p.gate_up, gu_x_stride, p.gate_up.n, 1, gu_cps,
                                              ItemIndex{tile, slot, f.gu_tiles}, CountHooks{{table}, nullptr, 0});
      __syncthreads();
      if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(p.counters + 1 + slot, 1);
      }
    } else {
      const int j = item - f.gu_items, slot = j / f.dn_tiles, tile = j - slot * f.dn_tiles;
      const bool stored = gemv_block<1, 1, 4, false, true, true>(
          p.down, dn_x_stride, p.down.y_stride ? p.down.y_stride : p.down.n, 1, dn_cps,
          ItemIndex{tile, slot, f.dn_tiles},
          CountHooks{{table}, p.counters + 1 + slot, f.gu_tiles, early_trigger ? &next_item : nullptr, f.total});
      if (p.combine.x && stored) {  // (uniform over the block)
        const int active = table ? table->active : p.down.num_active ? *p.down.num_active : slots;
        __threadfence();  // this tile's outputs, before the count that hands them to the combine
        __syncthreads();
        if (threadIdx.x == 0) combine_last = atomicAdd(p.counters + 1 + slots + tile, 1) == active - 1;
        __syncthreads();
        if (combine_last) {
          if (table) detail::pdl_wait();  // the combine reads the router's choices and positions
          __threadfence();
          ffn_combine_rows(p.combine, tile * kTileRows, order_s, w_s);
        }
      }
    }
    __syncthreads();
    item = next_item;
  }
  if (table) detail::pdl_wait();  // (self-routed: the router completes before the dependents launch)
  detail::pdl_launch_dependents();
}

// Whether expert GEMVs with groups_before_wait launch early (pdl_mode 2): on unless
// AURORA_PDL_EXPERTS=0 (H200, 2026-11-28, batch 1: OLMoE 1.471 vs 1.478-1.488 ms, Qwen3 4.562 vs
// 4.626-4.651 ms, Mixtral 8.292 vs 8.291-8.325 ms; Mixtral batch 64 42.98 vs 43.01 ms).
bool early_expert_launch() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_PDL_EXPERTS");
    return !(v && v[0] == '0');
  }();
  return on;
}

// Whether launches of more than 64 positions per group (without the RMSNorm prologue) run the tiled
// GEMM (grouped_gemm.cu) instead of the NB = 8 GEMV instance: on unless AURORA_EXPERT_GEMM=0, or
// set_tiled_gemm() for tests.
std::atomic<int> g_tiled_override{-1};
bool tiled_gemm_enabled() {
  const int mode = g_tiled_override.load(std::memory_order_relaxed);  // 1: on, 0: off, -1: the environment
  if (mode >= 0) return mode == 1;
  static const bool on = [] {
    const char* v = std::getenv("AURORA_EXPERT_GEMM");
    return !(v && v[0] == '0');
  }();
  return on;
}

// Which launches may split k (gemv.hpp says why): by default only dense, unnormed launches of at
// most kGemvNormMaxPositions positions, whose instance and grid (so their split, so their bits) are
// a function of n and k alone; AURORA_GEMV_SPLITK=1 or set_gemv_split_k(true): every launch;
// AURORA_GEMV_SPLITK=0 or set_gemv_split_k(false): none.
std::atomic<int> g_split_override{-1};
bool split_allowed(const GroupedGemvParams& p, bool norm) {
  int mode = g_split_override.load(std::memory_order_relaxed);  // 1: all, 0: none, -1: the default
  if (mode < 0) {
    static const int env = [] {
      const char* v = std::getenv("AURORA_GEMV_SPLITK");
      return v && v[0] == '1' ? 1 : v && v[0] == '0' ? 0 : -1;
    }();
    mode = env;
  }
  if (mode >= 0) return mode == 1;
  const bool grouped = p.group_offsets || p.active_groups || p.num_active;
  return !grouped && !norm && p.num_group_slots == 1 && p.max_positions_per_group <= kGemvNormMaxPositions;
}

// Blocks of `kernel` (with `threads` and `smem`) the current device holds at once.
int resident_blocks(const void* kernel, int threads, size_t smem) {
  int device = 0;
  AURORA_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, size_t>, int> cache;
  std::lock_guard lock(mu);
  auto [it, fresh] = cache.try_emplace({device, kernel, smem}, 0);
  if (fresh) {
    int per_sm = 0;
    AURORA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    int sms = 0;
    AURORA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    it->second = std::max(1, per_sm) * sms;
  }
  return it->second;
}

struct LaunchShape {
  int tiles_z = 0;  // gridDim.x
  int z = 1;
  int splits = 1;
  int cps = 0;  // chunks per split
};

template <int TILES, int NB, int WARPS, bool NORM>
size_t smem_bytes(const GroupedGemvParams& p, int cps) {
  size_t smem = sizeof(float) * WARPS * TILES * NB * 128;
  if (NORM) smem += sizeof(bf16) * size_t(std::min(NB * 8, p.max_positions_per_group)) * size_t(cps) * kChunk;
  return smem;
}

// Split k only while the whole grid stays resident (one wave): a second, partial wave of blocks
// costs more than the split gains (measured on the H200: OLMoE experts' gate_up 24 -> 30 us when a
// split made 1024 blocks of a 924-block wave).
template <int TILES, int NB, int WARPS, bool NORM, bool PF = false>
LaunchShape plan_shape(const GroupedGemvParams& p, int z) {
  constexpr int U = (WARPS >= 8 && NB < 8 ? 8 : 4) / TILES;
  LaunchShape s;
  s.z = z;
  s.tiles_z = detail::ceil_div(p.n, kTileRows) * z;
  const int chunks = detail::ceil_div(p.k, kChunk);
  s.cps = chunks;
  if (!p.split_workspace || !p.split_tickets || !split_allowed(p, NORM)) return s;
  const int64_t base = int64_t{s.tiles_z} * p.num_group_slots;
  const auto kernel = reinterpret_cast<const void*>(grouped_gemv_kernel<TILES, NB, WARPS, NORM, PF>);
  const size_t smem = smem_bytes<TILES, NB, WARPS, NORM>(p, chunks);  // the unsplit (largest) size
  ensure_dynamic_smem(kernel, smem);
  const int64_t capacity = resident_blocks(kernel, WARPS * 32, smem);
  const int step = WARPS * U;  // chunks that give every warp one full round of loads
  const int64_t max_splits = std::max(1, chunks / step);
  int splits = static_cast<int>(std::min(max_splits, capacity / std::max<int64_t>(base, 1)));
  if (splits <= 1) return s;
  int cps = detail::ceil_div(chunks, splits);
  cps = detail::ceil_div(cps, step) * step;
  splits = detail::ceil_div(chunks, cps);
  const int64_t ws = base * splits * TILES * NB * 128;
  if (splits <= 1 || base > p.split_tickets_count || ws > p.split_workspace_floats) return s;
  s.splits = splits;
  s.cps = cps;
  return s;
}

template <int TILES, int NB, int WARPS, bool NORM, bool PF = false>
int instance_splits(const GroupedGemvParams& p, int z) {
  return plan_shape<TILES, NB, WARPS, NORM, PF>(p, z).splits;
}

// Whether split launches of the decode instance keep their splits in one block (gemv_block's SG):
// on unless AURORA_GEMV_SPLIT_IN_BLOCK=0, or set_gemv_split_in_block() for tests.
std::atomic<int> g_in_block_override{-1};
bool split_in_block() {
  const int mode = g_in_block_override.load(std::memory_order_relaxed);
  if (mode >= 0) return mode == 1;
  static const bool on = [] {
    const char* v = std::getenv("AURORA_GEMV_SPLIT_IN_BLOCK");
    return !(v && v[0] == '0');
  }();
  return on;
}

template <int TILES, int NB, int WARPS, bool NORM, bool PF, int SG>
void launch_in_block(const GroupedGemvParams& p, const LaunchShape& s, int64_t x_stride, int64_t y_stride, bool early,
                     cudaStream_t stream) {
  const auto kernel = grouped_gemv_kernel<TILES, NB, WARPS, NORM, PF, SG>;
  const size_t smem = sizeof(float) * WARPS * SG * TILES * NB * 128;
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), smem);
  const dim3 grid(static_cast<unsigned>(s.tiles_z), static_cast<unsigned>(p.num_group_slots), 1);
  launch_pdl_hinted(early, kernel, grid, dim3(WARPS * 32 * SG), smem, stream, p, x_stride, y_stride, s.z, s.cps);
}

template <int TILES, int NB, int WARPS, bool NORM, bool PF = false>
void launch_instance(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, int z, cudaStream_t stream) {
  const LaunchShape s = plan_shape<TILES, NB, WARPS, NORM, PF>(p, z);
  const size_t smem = smem_bytes<TILES, NB, WARPS, NORM>(p, s.cps);
  // Per device (several GPUs per process); the first launch of each shape is a warm-up, before any capture.
  ensure_dynamic_smem(reinterpret_cast<const void*>(grouped_gemv_kernel<TILES, NB, WARPS, NORM, PF>), smem);
  const dim3 grid(static_cast<unsigned>(s.tiles_z), static_cast<unsigned>(p.num_group_slots),
                  static_cast<unsigned>(s.splits));
  // Experts whose weights can stream before the previous kernel ends may launch early (pdl_mode 2).
  const bool grouped = p.group_offsets || p.active_groups || p.num_active;
  const bool early = (p.groups_before_wait && early_expert_launch()) || (NORM && (early_launches() & kEarlyQkv)) ||
                     (!grouped && !NORM && p.epilogue == GemvEpilogue::kAccumulateF32 &&
                      p.max_positions_per_group <= kGemvNormMaxPositions && (early_launches() & kEarlyOProj));
  if constexpr (TILES == 1 && NB == 1 && WARPS == 4 && !NORM && PF) {
    if (split_in_block() && (s.splits == 2 || s.splits == 4)) {
      if (s.splits == 2) {
        launch_in_block<TILES, NB, WARPS, NORM, PF, 2>(p, s, x_stride, y_stride, early, stream);
      } else {
        launch_in_block<TILES, NB, WARPS, NORM, PF, 4>(p, s, x_stride, y_stride, early, stream);
      }
      return;
    }
  }
  launch_pdl_hinted(early, grouped_gemv_kernel<TILES, NB, WARPS, NORM, PF>, grid, dim3(WARPS * 32), smem, stream, p,
                    x_stride, y_stride, z, s.cps);
}

struct Launcher {
  const GroupedGemvParams& p;
  int64_t x_stride, y_stride;
  cudaStream_t stream;
  template <int TILES, int NB, int WARPS, bool NORM, bool PF = false>
  void operator()(int z) const {
    launch_instance<TILES, NB, WARPS, NORM, PF>(p, x_stride, y_stride, z, stream);
  }
};
struct SplitCounter {
  const GroupedGemvParams& p;
  template <int TILES, int NB, int WARPS, bool NORM, bool PF = false>
  int operator()(int z) const {
    return instance_splits<TILES, NB, WARPS, NORM, PF>(p, z);
  }
};

// Decode launches with k >= this use the prefetching instances (0: none): set_gemv_prefetch_min_k,
// else AURORA_GEMV_PREFETCH=N, else 2048. H200, 2026-11-29, decode ms/step at batch 1 / 16 / 64 with
// none, k >= 8192, 2048, 512: Mixtral-8x7B 8.64 / 28.49 / 43.58, 8.28 / 27.94 / 41.09,
// 8.15 / 26.64 / 38.53, 8.15 / 26.65 / 38.34; Qwen3-30B-A3B 4.08 / 16.42 / 27.43, 4.07 / 16.41 /
// 27.40, 4.03 / 15.74 / 27.49, 4.12 / 17.55 / 31.98; OLMoE-1B-7B 1.432 / 5.10 / 8.29, 1.431 / 5.10 /
// 8.28, 1.417 / 4.98 / 8.28, 1.439 / 5.25 / 8.79 (short k: the halved occupancy costs more than the
// prefetch gains).
std::atomic<int> g_prefetch_override{-1};
int gemv_prefetch_min_k() {
  const int over = g_prefetch_override.load(std::memory_order_relaxed);
  if (over >= 0) return over;
  static const int min_k = [] {
    const char* v = std::getenv("AURORA_GEMV_PREFETCH");
    return v ? std::max(0, std::atoi(v)) : 2048;
  }();
  return min_k;
}

// Calls f.template operator()<TILES, NB, WARPS, NORM[, PF]>(z) for the instance these parameters use.
template <int TILES, class F>
auto dispatch_nb(const GroupedGemvParams& p, const F& f) {
  // Decode sizes keep few accumulators (occupancy: loads in flight); prefill sizes take 64
  // positions per block so that the grid stays small. The RMSNorm prologue (<= 4 positions) has
  // instances of its own, so that the others carry none of its registers.
  const int m = std::max(1, p.max_positions_per_group);
  const bool wide = gemv_warps() == 8;
  const bool prefetch = !wide && gemv_prefetch_min_k() > 0 && p.k >= gemv_prefetch_min_k();
  if (p.norm_weight) {
    if (prefetch) return f.template operator()<TILES, 1, 4, true, true>(1);
    return wide ? f.template operator()<TILES, 1, 8, true>(1) : f.template operator()<TILES, 1, 4, true>(1);
  }
  if (m <= 8) {
    if (prefetch) return f.template operator()<TILES, 1, 4, false, true>(1);
    return wide ? f.template operator()<TILES, 1, 8, false>(1) : f.template operator()<TILES, 1, 4, false>(1);
  }
  if (m <= 64) {
    const int z = detail::ceil_div(m, 16);
    if (prefetch) return f.template operator()<TILES, 2, 4, false, true>(z);
    return wide ? f.template operator()<TILES, 2, 8, false>(z) : f.template operator()<TILES, 2, 4, false>(z);
  }
  return f.template operator()<TILES, 8, 4, false>(detail::ceil_div(m, 64));
}

constexpr int kLinearWarps = 8;

__global__ void linear_f32_kernel(LinearParams p, int64_t x_stride, int64_t y_stride) {
  constexpr int kTokens = 4;
  detail::pdl_wait();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t o = blockIdx.x * kLinearWarps + warp;
  const int32_t t0 = blockIdx.y * kTokens;
  if (o >= p.out_features) return;
  const float* w = p.weight + int64_t{o} * p.in_features;
  float acc[kTokens] = {0, 0, 0, 0};
  for (int32_t i = lane; i < p.in_features; i += 32) {
    const float wv = w[i];
#pragma unroll
    for (int r = 0; r < kTokens; ++r) {
      if (t0 + r < p.num_rows) acc[r] += p.x[(t0 + r) * x_stride + i] * wv;
    }
  }
#pragma unroll
  for (int r = 0; r < kTokens; ++r) {
    const float v = detail::warp_sum(acc[r]) + (p.bias ? p.bias[o] : 0.0f);
    if (lane == 0 && t0 + r < p.num_rows) {
      float* y = p.y + (t0 + r) * y_stride + o;
      *y = p.accumulate ? *y + v : v;
    }
  }
}

std::atomic<int> g_self_route_override{-1};
std::atomic<int64_t> g_self_routed_launches{0};

// False (nothing launched) when the grid is more than one wave: every wave would pay the routing.
// The checks of a self-routed gate_up (GroupedGemvParams::self_route), fused or not.
void check_self_route(const GroupedGemvParams& p) {
  const GroupedGemvParams::SelfRoute& r = p.self_route;
  AURORA_KERNEL_CHECK(r.ready, "self-routed gemv: self_route.ready must be set");
  AURORA_KERNEL_CHECK(
      r.num_tokens >= 1 && r.num_tokens <= kGemvNormMaxPositions,
      "self-routed gemv: self_route.num_tokens must be 1.." << kGemvNormMaxPositions << ", got " << r.num_tokens);
  AURORA_KERNEL_CHECK(
      r.num_experts >= 1 && r.num_experts <= kSelfRouteMaxExperts,
      "self-routed gemv: self_route.num_experts must be 1.." << kSelfRouteMaxExperts << ", got " << r.num_experts);
  AURORA_KERNEL_CHECK(
      r.top_k >= 1 && r.top_k <= kMaxTopK && r.top_k <= r.num_experts,
      "self-routed gemv: self_route.top_k must be 1.." << kMaxTopK << " and at most the experts, got " << r.top_k);
  AURORA_KERNEL_CHECK(p.epilogue == GemvEpilogue::kSwiGluBF16 && !p.norm_weight && p.group_offsets && p.active_groups &&
                          p.num_active && p.x_rows && p.x_row_div == r.top_k &&
                          p.max_positions_per_group == r.num_tokens &&
                          p.num_group_slots == std::min(r.num_tokens * r.top_k, r.num_experts) &&
                          (!p.y_stride || p.y_stride == p.n) && gemv_warps() == 4,
                      "self-routed gemv: the routed experts' SwiGLU gate_up of the step (group arrays set, x_row_div "
                      "= top_k, one slot per possible expert, max_positions_per_group = num_tokens, 4-warp "
                      "instances); got "
                          << p.num_group_slots << " slots for " << r.num_tokens << " tokens, max positions "
                          << p.max_positions_per_group);
}

bool launch_self_routed(const GroupedGemvParams& p, int64_t x_stride, cudaStream_t stream) {
  check_self_route(p);
  const int cps = detail::ceil_div(p.k, kChunk);
  const size_t smem = smem_bytes<2, 1, 4, false>(p, cps);
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.n, kTileRows)), static_cast<unsigned>(p.num_group_slots));
  const bool prefetch = gemv_prefetch_min_k() > 0 && p.k >= gemv_prefetch_min_k();
  const auto kernel = prefetch ? self_routed_gate_up_kernel<true> : self_routed_gate_up_kernel<false>;
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), smem);
  if (int64_t{grid.x} * grid.y > resident_blocks(reinterpret_cast<const void*>(kernel), 128, smem)) return false;
  g_self_routed_launches.fetch_add(1, std::memory_order_relaxed);
  // Launched early: its blocks start once every router block has written its logits.
  launch_pdl_hinted(true, kernel, grid, dim3(128), smem, stream, p, x_stride, cps);
  return true;
}

}  // namespace

bool gemv_self_route_enabled() {
  const int mode = g_self_route_override.load(std::memory_order_relaxed);
  if (mode >= 0) return mode == 1;
  static const bool on = !env_is("AURORA_SELF_ROUTE", '0');
  return on;
}
int64_t gemv_self_routed_launches() { return g_self_routed_launches.load(std::memory_order_relaxed); }
void set_gemv_self_route(bool on) { g_self_route_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void reset_gemv_self_route() { g_self_route_override.store(-1, std::memory_order_relaxed); }

void launch_grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream) {
  AURORA_KERNEL_CHECK(p.n > 0 && p.k > 0 && p.k % 8 == 0, "gemv needs k % 8 == 0, got n " << p.n << ", k " << p.k);
  AURORA_KERNEL_CHECK(p.num_group_slots >= 1, "gemv needs at least one group slot");
  if (!p.group_offsets && p.num_positions == 0) return;
  const int64_t x_stride = p.x_stride ? p.x_stride : p.k;
  const int64_t y_stride = p.y_stride ? p.y_stride : p.n;
  AURORA_KERNEL_CHECK(x_stride % 8 == 0, "gemv x rows must be 16-byte aligned");
  if (p.norm_weight) {
    AURORA_KERNEL_CHECK(p.norm_x && (p.norm_x_stride % 4 == 0) && p.max_positions_per_group >= 1 &&
                            p.max_positions_per_group <= kGemvNormMaxPositions &&
                            (p.group_offsets || p.num_positions <= p.max_positions_per_group),
                        "gemv RMSNorm prologue needs norm_x with 16-byte aligned rows and at most "
                            << kGemvNormMaxPositions << " positions per group, got " << p.max_positions_per_group);
  }
  const bool swiglu = p.epilogue == GemvEpilogue::kSwiGluBF16;
  if (swiglu) {
    AURORA_KERNEL_CHECK(p.y_bf16 && !p.bias, "SwiGLU epilogue writes bf16 and takes no bias");
  } else {
    AURORA_KERNEL_CHECK(p.y_f32, "float32 epilogue needs y_f32");
  }
  if (p.self_route.logits && launch_self_routed(p, x_stride, stream)) return;
  if (gemv_uses_tiled_gemm(p)) {
    launch_tiled_grouped_gemm(p, x_stride, y_stride, p.groups_before_wait && early_expert_launch(), stream);
    return;
  }
  const Launcher launch{p, x_stride, y_stride, stream};
  if (swiglu) {
    dispatch_nb<2>(p, launch);
  } else {
    dispatch_nb<1>(p, launch);
  }
}

bool expert_ffn_for(int32_t tokens, int32_t intermediate, int32_t forced) {
  static const int env = [] {  // 1: always, 0: never, -1: the rule
    const char* v = std::getenv("AURORA_FUSED_FFN");
    return v && v[0] == '1' ? 1 : v && v[0] == '0' ? 0 : -1;
  }();
  if (tokens > kGemvNormMaxPositions) return false;
  const int mode = forced >= 0 ? forced : env;
  return mode >= 0 ? mode == 1 : tokens <= kExpertFfnMaxTokens && intermediate >= kExpertFfnMinIntermediate;
}

void launch_expert_ffn(const ExpertFfnCudaParams& p, cudaStream_t stream) {
  const GroupedGemvParams &g = p.gate_up, &d = p.down;
  AURORA_KERNEL_CHECK(g.epilogue == GemvEpilogue::kSwiGluBF16 && g.y_bf16 && !g.bias && !g.y_stride &&
                          d.epilogue == GemvEpilogue::kStoreF32 && d.y_f32 && !d.bias && d.x == g.y_bf16 &&
                          (!d.x_stride || d.x_stride == g.n) && !d.x_rows,
                      "fused expert FFN: gate_up (SwiGLU, bf16) must feed down (float32 store) directly");
  AURORA_KERNEL_CHECK(!g.norm_weight && !d.norm_weight && g.group_offsets && g.group_offsets == d.group_offsets &&
                          g.active_groups == d.active_groups && g.num_active == d.num_active &&
                          g.num_group_slots == d.num_group_slots && p.counters,
                      "fused expert FFN: both projections need the same routed groups, and counters");
  AURORA_KERNEL_CHECK(g.max_positions_per_group >= 1 && g.max_positions_per_group <= kExpertFfnMaxPositions &&
                          d.max_positions_per_group <= kExpertFfnMaxPositions,
                      "fused expert FFN: at most " << kExpertFfnMaxPositions << " positions per expert, got "
                                                   << g.max_positions_per_group);
  AURORA_KERNEL_CHECK(g.k % 8 == 0 && d.k % 8 == 0 && g.n % 8 == 0, "fused expert FFN: k and n must be multiples of 8");
  const int64_t gu_x_stride = g.x_stride ? g.x_stride : g.k;
  AURORA_KERNEL_CHECK(gu_x_stride % 8 == 0, "gemv x rows must be 16-byte aligned");
  const MoeCombineCudaParams& c = p.combine;
  if (c.x) {
    const int64_t out_stride = d.y_stride ? d.y_stride : d.n;
    AURORA_KERNEL_CHECK(
        c.expert_out == d.y_f32 && (c.expert_out_stride ? c.expert_out_stride : c.hidden) == out_stride &&
            c.hidden == d.n && c.item_position && c.topk_ids && c.topk_weights && !c.shared_out && !c.norm_weight &&
            c.top_k >= 1 && c.top_k <= kMaxTopK && c.num_tokens >= 1 && c.num_tokens <= kExpertFfnMaxPositions,
        "fused expert FFN: the combine reads the down outputs, has no shared expert and no norm, and at "
        "most "
            << kExpertFfnMaxPositions << " tokens; got " << c.num_tokens << " tokens, top " << c.top_k << ", hidden "
            << c.hidden << " for down rows " << d.n);
  }
  if (g.self_route.logits) {  // (read from gate_up only)
    check_self_route(g);
    g_self_routed_launches.fetch_add(1, std::memory_order_relaxed);
  }
  FfnItems f;
  f.gu_tiles = detail::ceil_div(g.n, kTileRows);
  f.dn_tiles = detail::ceil_div(d.n, kTileRows);
  const int gu_cps = detail::ceil_div(g.k, kChunk), dn_cps = detail::ceil_div(d.k, kChunk);
  f.gu_items = g.num_group_slots * f.gu_tiles;
  f.total = g.num_group_slots * (f.gu_tiles + f.dn_tiles);
  const auto kernel = expert_ffn_kernel;
  const size_t smem = std::max(smem_bytes<2, 1, 4, false>(g, gu_cps), smem_bytes<1, 1, 4, false>(d, dn_cps));
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), smem);
  const int64_t grid = std::min<int64_t>(resident_blocks(reinterpret_cast<const void*>(kernel), 128, smem), f.total);
  launch_pdl_hinted((early_launches() & kEarlyFfn) != 0, kernel, dim3(static_cast<unsigned>(grid)), dim3(128), smem,
                    stream, p, gu_x_stride, int64_t{g.n}, gu_cps, dn_cps, f, (early_launches() & kEarlyQkv) != 0);
}

bool gemv_uses_tiled_gemm(const GroupedGemvParams& p) {
  return !p.norm_weight && p.max_positions_per_group >= kTiledGemmMinPositions && tiled_gemm_enabled();
}
void set_tiled_gemm(bool on) { g_tiled_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void reset_tiled_gemm() { g_tiled_override.store(-1, std::memory_order_relaxed); }

void set_gemv_prefetch_min_k(int32_t min_k) {
  g_prefetch_override.store(std::max(0, min_k), std::memory_order_relaxed);
}
void reset_gemv_prefetch() { g_prefetch_override.store(-1, std::memory_order_relaxed); }

void set_gemv_split_k(bool on) { g_split_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void set_gemv_split_in_block(bool on) { g_in_block_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void reset_gemv_split_in_block() { g_in_block_override.store(-1, std::memory_order_relaxed); }
void reset_gemv_split_k() { g_split_override.store(-1, std::memory_order_relaxed); }

int32_t gemv_splits(const GroupedGemvParams& p) {
  if (gemv_uses_tiled_gemm(p)) return 1;
  const SplitCounter splits{p};
  return p.epilogue == GemvEpilogue::kSwiGluBF16 ? dispatch_nb<2>(p, splits) : dispatch_nb<1>(p, splits);
}

void launch_linear_f32(const LinearParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.out_features, kLinearWarps)),
                  static_cast<unsigned>(detail::ceil_div(p.num_rows, 4)));
  launch_pdl(linear_f32_kernel, grid, dim3(kLinearWarps * 32), 0, stream, p,
             p.x_stride ? p.x_stride : int64_t{p.in_features}, p.y_stride ? p.y_stride : int64_t{p.out_features});
}

}  // namespace aurora::kernels::cuda
