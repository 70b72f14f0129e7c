// Grouped small-batch GEMV on tensor cores (decode projections and routed experts: launch_grouped_gemv; its
// block is gemv_block.cuh, the self-routed and fused expert launches expert_ffn.cu) and the float32
// linear twin on CUDA cores.
#include "aurora/kernels/cuda/gemv.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "gemv_block.cuh"
#include "grouped_gemm.cuh"

namespace aurora::kernels::cuda {
namespace {
using namespace gemv_impl;

template <int TILES, int NB, int WARPS, bool NORM, bool PF = false, int SG = 1>
__global__ void __launch_bounds__(WARPS * 32 * SG,
                                  (kMinBlocks<NB, WARPS, PF> / SG > 0 ? kMinBlocks<NB, WARPS, PF> / SG : 1))
    grouped_gemv_kernel(const __grid_constant__ GroupedGemvParams p, int64_t x_stride, int64_t y_stride, int z,
                        int cps) {
  gemv_block<TILES, NB, WARPS, NORM, PF, false, GridIndex, PdlHooks, SG>(p, x_stride, y_stride, z, cps, GridIndex{},
                                                                         PdlHooks{});
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

struct LaunchShape {
  int tiles_z = 0;  // gridDim.x
  int z = 1;
  int splits = 1;
  int cps = 0;  // chunks per split
};

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
// prefetch gains). gemv_prefetch_min_k (gemv_block.cuh) is defined below.

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

}  // namespace

namespace gemv_impl {
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
}  // namespace gemv_impl

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

int32_t tiled_gemm_min_positions(const GroupedGemvParams& p) {
  if (!p.group_offsets) return kTiledGemmMinPositions;
  const int64_t rows = p.epilogue == GemvEpilogue::kSwiGluBF16 ? int64_t{2} * p.n : p.n;
  return rows * p.k >= kTiledGemmLargeExpert ? kTiledGemmMinLargeExpertPositions : kTiledGemmMinRoutedPositions;
}

bool gemv_uses_tiled_gemm(const GroupedGemvParams& p) {
  return !p.norm_weight && p.max_positions_per_group >= tiled_gemm_min_positions(p) && tiled_gemm_enabled();
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
