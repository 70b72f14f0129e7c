// The grouped GEMV's block body (gemv_block) and what it is parameterised on, private to
// kernels/cuda: launch_grouped_gemv's kernels (gemv.cu) and the routed experts' kernels that route
// for themselves or fuse gate_up and down (expert_ffn.cu) run the same body, so they give the same
// bits.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "aurora/kernels/cuda/gemv.hpp"
#include "device_utils.cuh"
#include "mma.cuh"

namespace aurora::kernels::cuda::gemv_impl {

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

// Host side (gemv.cu).
// Blocks of `kernel` (with `threads` and `smem`) the current device holds at once.
int resident_blocks(const void* kernel, int threads, size_t smem);
// Whether expert GEMVs with groups_before_wait launch early (AURORA_PDL_EXPERTS).
bool early_expert_launch();
// Decode launches with k >= this use the prefetching instances (0: none).
int gemv_prefetch_min_k();
// Dynamic shared memory of an instance's blocks.
template <int TILES, int NB, int WARPS, bool NORM>
size_t smem_bytes(const GroupedGemvParams& p, int cps) {
  size_t smem = sizeof(float) * WARPS * TILES * NB * 128;
  if (NORM) smem += sizeof(bf16) * size_t(std::min(NB * 8, p.max_positions_per_group)) * size_t(cps) * kChunk;
  return smem;
}

// launch_grouped_gemv with self_route set (expert_ffn.cu); false: nothing launched (the grid is
// more than one wave), launch it as without self_route.
bool launch_self_routed(const GroupedGemvParams& p, int64_t x_stride, cudaStream_t stream);

}  // namespace aurora::kernels::cuda::gemv_impl
