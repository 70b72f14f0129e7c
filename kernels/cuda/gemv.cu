// Grouped small-batch GEMV on tensor cores (decode projections and routed experts) and the
// float32 linear twin on CUDA cores.
#include "aurora/kernels/cuda/gemv.hpp"

#include <algorithm>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kTileRows = 16;   // mma M
constexpr int kChunk = 32;      // k per thread-quad load: 4 threads x 8 bf16

__device__ __forceinline__ void mma_16816(float* d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                          uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Fragment mapping (k permuted consistently for A and B, which a dot product allows): in a chunk of
// 32 k, thread (g = lane / 4, q = lane % 4) loads elements [8q, 8q + 8) of weight rows g and g + 8
// and of token g's input row; mma step s in {0, 1} takes elements 4s..4s+3 of those 8 as its
// k-slots {2q, 2q+1, 2q+8, 2q+9}: a0/a2 from row g, a1/a3 from row g + 8, b0/b1 from the token.
// WARPS warps split k; each keeps U * TILES * 2 16-byte weight loads in flight per iteration. Small
// blocks (4 warps, 16 KB in flight, ~70 registers: 7 blocks per multiprocessor) measured faster on
// the H200 than 8 warps with twice the loads in flight (~105 registers: 2 blocks).
template <int TILES, int NB, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) grouped_gemv_kernel(GroupedGemvParams p, int64_t x_stride, int64_t y_stride,
                                                                  int z) {
  constexpr int kThreads = WARPS * 32;
  constexpr int U = (WARPS >= 8 && NB < 8 ? 8 : 4) / TILES;  // chunks in flight per iteration
  extern __shared__ float red[];  // [WARPS][TILES][NB][4][32]
  detail::pdl_launch_dependents();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, q = lane & 3;
  const int n = p.n, k = p.k;
  const int tile = blockIdx.x / z, chunk = blockIdx.x % z;
  const int row0 = tile * kTileRows;
  const int chunks = (k + kChunk - 1) / kChunk;
  const int per_warp = (chunks + WARPS - 1) / WARPS;
  const int c_begin = warp * per_warp;
  const int c_end = min(chunks, c_begin + per_warp);
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
        for (int h = 0; h < 2; ++h) a[u][tt][h] = in_range && wrow[tt][h] ? detail::ld_stream_u4(wrow[tt][h] + kk) : zero;
    }
  };
  // A dense matrix is known before the previous kernel ends: its first weights load before the wait.
  if (!grouped) {
    set_rows(0);
    if (chunk == 0 && c_begin < c_end) load_a(c_begin);
  }
  detail::pdl_wait();

  const int slot = blockIdx.y;
  if (p.num_active && slot >= *p.num_active) return;
  const int group = p.active_groups ? p.active_groups[slot] : slot;
  int pos_begin = 0, pos_count = p.num_positions;
  if (p.group_offsets) {
    pos_begin = p.group_offsets[group];
    pos_count = p.group_offsets[group + 1] - pos_begin;
  }
  // Position chunks of one weight tile are consecutive blocks, so the tile's later reads hit L2.
  const int first = chunk * (NB * 8);
  if (first >= pos_count) return;
  const int npos = min(NB * 8, pos_count - first);
  const int nb_used = (npos + 7) / 8;
  const bool preloaded = !grouped && chunk == 0;
  if (grouped) set_rows(group);

  const bf16* xrow[NB];
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) {
    const int i = nb * 8 + g;
    xrow[nb] = nullptr;
    if (i < npos) {
      const int pos = pos_begin + first + i;
      const int64_t r = p.x_rows ? p.x_rows[pos] / p.x_row_div : pos;
      xrow[nb] = p.x + r * x_stride;
    }
  }

  float acc[TILES][NB][4];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[tt][nb][j] = 0.0f;

  for (int c = c_begin; c < c_end; c += U) {
    if (!(preloaded && c == c_begin)) load_a(c);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int kk = (c + u) * kChunk + q * 8;
      const bool in_range = c + u < c_end && kk < k;
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        if (nb < nb_used) {
          const uint4 b = in_range && xrow[nb] ? __ldg(reinterpret_cast<const uint4*>(xrow[nb] + kk)) : zero;
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

  // Split-k reduction in a fixed order.
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int j = 0; j < 4; ++j) red[(((warp * TILES + tt) * NB + nb) * 4 + j) * 32 + lane] = acc[tt][nb][j];
  __syncthreads();
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
#pragma unroll
      for (int w = 0; w < WARPS; ++w) s += red[((w * TILES + tt) * NB + nb) * 128 + j * 32 + ln];
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
}

template <int TILES, int NB, int WARPS>
void launch_instance(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, int z, cudaStream_t stream) {
  const size_t smem = sizeof(float) * WARPS * TILES * NB * 128;
  // Per device (several GPUs per process); the first launch of each shape is a warm-up, before any capture.
  ensure_dynamic_smem(reinterpret_cast<const void*>(grouped_gemv_kernel<TILES, NB, WARPS>), smem);
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.n, kTileRows) * z), static_cast<unsigned>(p.num_group_slots));
  launch_pdl(grouped_gemv_kernel<TILES, NB, WARPS>, grid, dim3(WARPS * 32), smem, stream, p, x_stride, y_stride, z);
}

template <int TILES>
void dispatch_nb(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, cudaStream_t stream) {
  // Decode sizes keep few accumulators (occupancy: loads in flight); prefill sizes take 64
  // positions per block so that the grid stays small.
  const int m = std::max(1, p.max_positions_per_group);
  const bool wide = gemv_warps() == 8;
  if (m <= 8) {
    return wide ? launch_instance<TILES, 1, 8>(p, x_stride, y_stride, 1, stream)
                : launch_instance<TILES, 1, 4>(p, x_stride, y_stride, 1, stream);
  }
  if (m <= 64) {
    const int z = detail::ceil_div(m, 16);
    return wide ? launch_instance<TILES, 2, 8>(p, x_stride, y_stride, z, stream)
                : launch_instance<TILES, 2, 4>(p, x_stride, y_stride, z, stream);
  }
  launch_instance<TILES, 8, 4>(p, x_stride, y_stride, detail::ceil_div(m, 64), stream);
}

constexpr int kLinearWarps = 8;

__global__ void linear_f32_kernel(LinearParams p, int64_t x_stride, int64_t y_stride) {
  constexpr int kTokens = 4;
  detail::pdl_launch_dependents();
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

}  // namespace

void launch_grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream) {
  AURORA_KERNEL_CHECK(p.n > 0 && p.k > 0 && p.k % 8 == 0, "gemv needs k % 8 == 0, got n " << p.n << ", k " << p.k);
  AURORA_KERNEL_CHECK(p.num_group_slots >= 1, "gemv needs at least one group slot");
  if (!p.group_offsets && p.num_positions == 0) return;
  const int64_t x_stride = p.x_stride ? p.x_stride : p.k;
  const int64_t y_stride = p.y_stride ? p.y_stride : p.n;
  AURORA_KERNEL_CHECK(x_stride % 8 == 0, "gemv x rows must be 16-byte aligned");
  if (p.epilogue == GemvEpilogue::kSwiGluBF16) {
    AURORA_KERNEL_CHECK(p.y_bf16 && !p.bias, "SwiGLU epilogue writes bf16 and takes no bias");
    dispatch_nb<2>(p, x_stride, y_stride, stream);
  } else {
    AURORA_KERNEL_CHECK(p.y_f32, "float32 epilogue needs y_f32");
    dispatch_nb<1>(p, x_stride, y_stride, stream);
  }
}

void launch_linear_f32(const LinearParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.out_features, kLinearWarps)),
                  static_cast<unsigned>(detail::ceil_div(p.num_rows, 4)));
  launch_pdl(linear_f32_kernel, grid, dim3(kLinearWarps * 32), 0, stream, p,
             p.x_stride ? p.x_stride : int64_t{p.in_features}, p.y_stride ? p.y_stride : int64_t{p.out_features});
}

}  // namespace aurora::kernels::cuda
