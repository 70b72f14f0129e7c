// Tiled tensor-core grouped GEMM for routed experts (and dense projections) at prefill sizes: the
// launch_grouped_gemv path for more than 64 positions per group (grouped_gemm.cuh), on Hopper's
// asynchronous warpgroup MMA (wgmma, sm_90a).
//
// Weights are the M side (rows of W), positions the N side. A block owns 128 weight rows (for the
// SwiGLU epilogue: 64 gate rows and the 64 matching up rows) x up to 128 positions of one group, and
// streams k in steps of 64 through a 3-stage pipeline of 16-byte cp.async copies (every thread
// copies; gathered input rows need per-row addresses) into shared tiles of 64-k rows (128 bytes)
// with the 128-byte swizzle that wgmma reads (the 16-byte chunk c of row r at chunk c ^ (r % 8)):
// 2 x 16 KB per stage, 97 KB per block, 2 blocks per multiprocessor. Two warpgroups each multiply
// 64 of the shared weight rows by the tile's positions (wgmma.m64nNk16, bf16 in, float32
// accumulators in registers, operands read by descriptor), N the narrowest of 8, 16, 32, 64, 128
// that covers the tile's positions: a group's partial last tile (Qwen3's experts get ~32 positions
// of a 512-token prefill) costs the tensor cores only its width. For SwiGLU, warp w of warpgroup g
// keeps the gate rows of outputs 32 g + 8 w + 0..7 in its shared rows 0..7 and their up rows in
// rows 8..15, so each thread's accumulators hold both halves of its outputs (d[i] and d[i + 2]).
// Rows past n and positions past the group's count are zero-filled by the copies (src-size 0) and
// never stored; so is the k tail past a multiple of 64.
//
// Bits: an output is the sum of the same k16 products in k order from 0, whatever the tile's
// instruction width, the grid or the other groups (tested: a position's bits do not depend on how
// its group is cut). The products are the same bits as mma.m16n8k16 steps gave in the mma.sync
// kernel this one replaced (measured on the H200 before it was removed: its tests compared the two).
//
// Work list: the blocks of one launch walk the position tiles (128 positions) of the active slots in
// slot order; slot s with T_s position tiles owns R * T_s consecutive blocks (R: weight-row tiles),
// in the order (row tile, position tile). So the blocks that share a weight tile run together and
// read it once from HBM (a Mixtral expert's gate_up is 235 MB, far beyond L2), and a group's input
// rows (at most a few MB) stay in L2 across its row tiles. Each block finds its slot with one warp's
// prefix sum over the slots' tile counts (read from device memory, like the GEMV's groups); the
// 1-D grid holds R * (a host bound on the tiles) blocks, and those past the last tile return at
// once. Nothing is read back to the host: the launch is the same whatever the routing.
//
// Measured (H200, 2026-11-29, 512-token prefill; docs/benchmarks.md): against the mma.sync kernel
// (ldmatrix + mma.m16n8k16, 4-stage padded tiles) Mixtral 68.2 -> 43.0-43.4 ms, Qwen3-30B-A3B 27.5 ->
// 24.7, OLMoE 8.2 -> 6.8; deeper pipelines with one block per multiprocessor and one step of
// products in flight (4, 5, 6 stages) were slower for every model.
#include "grouped_gemm.cuh"

#include <algorithm>
#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "mma.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kBlockRows = 128;  // weight rows per block
constexpr int kHalfRows = kBlockRows / 2;
constexpr int kBlockPositions = 128;
constexpr int kBlockK = 64;  // k per stage: one 128-byte swizzled row
constexpr int kStages = 3;
constexpr int kThreads = 256;                  // two warpgroups
constexpr int kSlotsPerLane = 4;               // work-list scan: 128 slots per warp round
constexpr int kTileBytes = 128 * kBlockK * 2;  // 128 rows of 64 bf16, for both operands
constexpr int kStageBytes = 2 * kTileBytes;
constexpr size_t kSmemBytes = size_t{kStages} * kStageBytes + 1024;  // + alignment to 1024 bytes
constexpr int kBlocksPerSm = 2;
constexpr int kLoads = kBlockRows / (kThreads / 8);  // 16-byte chunks per thread, operand and stage
static_assert(kSmemBytes * kBlocksPerSm <= 227 * 1024, "the blocks per SM fit in shared memory");
static_assert(kThreads >= kBlockPositions, "one thread per position finds the input rows");

// This block's tile of the work list (see the top of the file).
struct TileWork {  // trivial: it lives in shared memory
  int group;
  int pos_begin;  // the group's first position
  int first;      // the tile's first position within the group
  int npos;       // positions of the tile (0: no tile, the block returns)
  int row_tile;
};

// Warp 0 of the block: which slot, row tile and position tile block `block` works on; the other
// lanes' results are the same. Slots hold min(ceil(count / kBlockPositions), max_tiles) position
// tiles each.
__device__ __forceinline__ TileWork find_tile(const GroupedGemvParams& p, int block, int row_tiles, int max_tiles) {
  const int lane = threadIdx.x & 31;
  const int tile = block / row_tiles;  // position tiles of the slots before this block's, plus its own
  int num_slots = p.num_group_slots;
  if (p.num_active) num_slots = min(num_slots, *p.num_active);
  TileWork w{0, 0, 0, 0, 0};
  int base = 0;  // position tiles of the slots before this round's
  for (int s0 = 0; s0 < num_slots; s0 += 32 * kSlotsPerLane) {
    int group[kSlotsPerLane], begin[kSlotsPerLane], count[kSlotsPerLane], tiles[kSlotsPerLane];
    int sum = 0;
#pragma unroll
    for (int u = 0; u < kSlotsPerLane; ++u) {
      const int s = s0 + lane * kSlotsPerLane + u;
      group[u] = 0;
      begin[u] = 0;
      count[u] = 0;
      if (s < num_slots) {
        group[u] = p.active_groups ? p.active_groups[s] : s;
        if (p.group_offsets) {
          begin[u] = p.group_offsets[group[u]];
          count[u] = p.group_offsets[group[u] + 1] - begin[u];
        } else {
          count[u] = p.num_positions;
        }
      }
      tiles[u] = count[u] > 0 ? min((count[u] + kBlockPositions - 1) / kBlockPositions, max_tiles) : 0;
      sum += tiles[u];
    }
    int incl = sum;  // inclusive prefix sum over the lanes
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    const int total = __shfl_sync(0xffffffffu, incl, 31);
    int offset = tile - base - (incl - sum);  // position tiles into this lane's slots
    int hit = -1;
#pragma unroll
    for (int u = 0; u < kSlotsPerLane; ++u) {
      if (hit < 0) {
        if (offset >= 0 && offset < tiles[u]) {
          hit = u;
        } else {
          offset -= tiles[u];
        }
      }
    }
    const unsigned lanes = __ballot_sync(0xffffffffu, hit >= 0);
    if (lanes) {  // exactly one lane's slots hold the tile
      int g = 0, b = 0, c = 0, t = 1;
#pragma unroll
      for (int u = 0; u < kSlotsPerLane; ++u) {
        if (u == hit) {
          g = group[u];
          b = begin[u];
          c = count[u];
          t = tiles[u];
        }
      }
      const int src = __ffs(lanes) - 1;
      w.group = __shfl_sync(0xffffffffu, g, src);
      w.pos_begin = __shfl_sync(0xffffffffu, b, src);
      const int slot_count = __shfl_sync(0xffffffffu, c, src);
      const int slot_tiles = __shfl_sync(0xffffffffu, t, src);
      const int slot_offset = __shfl_sync(0xffffffffu, offset, src);
      // The slot's blocks start at row_tiles * (tile - slot_offset): (row tile, position tile).
      const int local = block % row_tiles + row_tiles * slot_offset;
      w.row_tile = local / slot_tiles;
      w.first = (local % slot_tiles) * kBlockPositions;
      w.npos = min(kBlockPositions, slot_count - w.first);
      return w;
    }
    base += total;
  }
  return w;  // past the last tile
}

// The weight row that shared row `shared_row` of the block's A tile holds (SwiGLU: the gate or up
// row of output 32 g + 8 w + r % 8 for shared row 64 g + 16 w + r, up when r >= 8; see the top).
template <bool kSwiGlu>
__device__ __forceinline__ int wg_weight_row(int shared_row, int row0, int n, bool& valid) {
  if constexpr (kSwiGlu) {
    const int out = (shared_row >> 6) * 32 + ((shared_row >> 4) & 3) * 8 + (shared_row & 7);
    const int half = (shared_row >> 3) & 1;
    valid = row0 + out < n;
    return half * n + row0 + out;
  } else {
    valid = row0 + shared_row < n;
    return row0 + shared_row;
  }
}

template <bool kSwiGlu>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    tiled_grouped_gemm_kernel(GroupedGemvParams p, int64_t x_stride, int64_t y_stride, int row_tiles, int max_tiles) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t raw_addr = detail::smem_addr(smem_raw);
  const uint32_t base = (raw_addr + 1023u) & ~1023u;  // swizzled tiles must start 1024-byte aligned
  unsigned char* smem = smem_raw + (base - raw_addr);
  __shared__ const bf16* x_row[kBlockPositions];
  __shared__ TileWork work;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int n = p.n, k = p.k;
  const bool grouped = p.group_offsets || p.active_groups || p.num_active;
  // Weights are constant: they may stream before the wait whenever the group is known without
  // reading what the previous kernel wrote (one dense matrix, or groups_before_wait).
  const bool early_weights = !grouped || p.groups_before_wait;
  if (!early_weights) detail::pdl_wait();
  if (warp == 0) {
    const TileWork w = find_tile(p, static_cast<int>(blockIdx.x), row_tiles, max_tiles);
    if (lane == 0) work = w;
  }
  __syncthreads();
  const int npos = work.npos;
  if (npos <= 0) return;
  const int group = work.group, pos_begin = work.pos_begin, first = work.first;

  // This thread copies the 16-byte chunk kc of shared rows r_first + 32 i (32 = kThreads / 8) of
  // both tiles.
  const int kc = tid & 7, r_first = tid >> 3;
  const int row0 = work.row_tile * (kSwiGlu ? kHalfRows : kBlockRows);
  const bf16* W = p.weight + static_cast<int64_t>(group) * p.weight_group_stride;
  const bf16* a_src[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    bool valid;
    const int w_row = wg_weight_row<kSwiGlu>(r_first + 32 * i, row0, n, valid);
    a_src[i] = valid ? W + static_cast<int64_t>(w_row) * k + kc * 8 : nullptr;
  }
  auto load_a = [&](int stage, int kt) {
    const uint32_t sa = base + stage * kStageBytes;
    const int k0 = kt * kBlockK;
    const bool k_in = k0 + kc * 8 < k;
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const bool valid = k_in && a_src[i];
      detail::cp_async16_zfill(smem + (sa - base) + detail::sw128_offset(r_first + 32 * i, kc),
                               valid ? a_src[i] + k0 : p.weight, valid);
    }
  };
  const int k_tiles = (k + kBlockK - 1) / kBlockK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_a(s, s);
  }
  if (early_weights) detail::pdl_wait();

  if (tid < kBlockPositions) {
    const bf16* row = nullptr;
    if (tid < npos) {
      const int pos = pos_begin + first + tid;
      const int64_t src = p.x_rows ? p.x_rows[pos] / p.x_row_div : pos;
      row = p.x + src * x_stride;
    }
    x_row[tid] = row;
  }
  __syncthreads();
  const bf16* b_src[kLoads];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const bf16* row = x_row[r_first + 32 * i];
    b_src[i] = row ? row + kc * 8 : nullptr;
  }
  auto load_b = [&](int stage, int kt) {
    const uint32_t sb = base + stage * kStageBytes + kTileBytes;
    const int k0 = kt * kBlockK;
    const bool k_in = k0 + kc * 8 < k;
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const bool valid = k_in && b_src[i];
      detail::cp_async16_zfill(smem + (sb - base) + detail::sw128_offset(r_first + 32 * i, kc),
                               valid ? b_src[i] + k0 : p.weight, valid);
    }
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_b(s, s);
    detail::cp_async_commit();
  }

  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.0f;
  // The k loop with the narrowest instruction that covers the tile's positions (block-uniform; one
  // loop per width, so that the accumulators' registers are fixed across each loop's wgmma).
  auto k_loop = [&](auto width) {
    constexpr int kWidth = decltype(width)::value;
    for (int kt = 0; kt < k_tiles; ++kt) {
      detail::cp_async_wait<kStages - 2>();  // this thread's copies of stage kt have landed
      detail::fence_proxy_async_shared();    // and are visible to wgmma
      __syncthreads();                       // everyone's; and step kt - 1's products are done
      const int next = kt + kStages - 1;     // into the stage step kt - 1 read
      if (next < k_tiles) {
        load_a(next % kStages, next);
        load_b(next % kStages, next);
      }
      detail::cp_async_commit();
      const uint32_t stage = base + (kt % kStages) * kStageBytes;
      const uint64_t da = detail::smem_desc_sw128(stage + wg * (64 * 128));  // the warpgroup's 64 rows
      const uint64_t db = detail::smem_desc_sw128(stage + kTileBytes);
      detail::wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBlockK / 16; ++ks) {  // +32 bytes of k per slice: +2 in the address field
        detail::wgmma_bf16<kWidth>(acc, da + 2 * ks, db + 2 * ks);
      }
      detail::wgmma_commit();
      detail::wgmma_wait<0>();  // before the next step's copies overwrite this stage
    }
  };
  if (npos <= 8) {
    k_loop(std::integral_constant<int, 8>{});
  } else if (npos <= 16) {
    k_loop(std::integral_constant<int, 16>{});
  } else if (npos <= 32) {
    k_loop(std::integral_constant<int, 32>{});
  } else if (npos <= 64) {
    k_loop(std::integral_constant<int, 64>{});
  } else {
    k_loop(std::integral_constant<int, 128>{});
  }
  detail::cp_async_wait<0>();
  detail::pdl_launch_dependents();

  const int wl = warp & 3, g = lane >> 2, q = lane & 3;
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    const int col = 8 * (i >> 2) + 2 * q + (i & 1);
    if constexpr (kSwiGlu) {
      if ((i & 2) != 0) continue;  // d[i + 2] holds the up half of d[i]'s output
      const int row = row0 + wg * 32 + wl * 8 + g;
      if (row >= n || col >= npos) continue;
      const int64_t out = (static_cast<int64_t>(pos_begin) + first + col) * y_stride + row;
      p.y_bf16[out] = __float2bfloat16(detail::silu(acc[i]) * acc[i + 2]);
    } else {
      const int row = row0 + wg * 64 + wl * 16 + g + 8 * ((i >> 1) & 1);
      if (row >= n || col >= npos) continue;
      const int64_t out = (static_cast<int64_t>(pos_begin) + first + col) * y_stride + row;
      const float v = acc[i] + (p.bias ? p.bias[row] : 0.0f);
      if (p.epilogue == GemvEpilogue::kAccumulateF32) {
        p.y_f32[out] += v;
      } else {
        p.y_f32[out] = v;
      }
    }
  }
}

// Two blocks per multiprocessor need 2 x 97 KB of shared memory: ask for the largest carveout (a
// hint the driver may otherwise resolve towards L1), once per (device, kernel) like
// ensure_dynamic_smem.
void prefer_shared_carveout(const void* kernel) {
  int device = 0;
  AURORA_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mu;
  static std::set<std::pair<int, const void*>> done;
  std::lock_guard lock(mu);
  if (!done.insert({device, kernel}).second) return;
  AURORA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
}

}  // namespace

void launch_tiled_grouped_gemm(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, bool early,
                               cudaStream_t stream) {
  // cp.async copies 16 bytes: weight and input rows must start 16-byte aligned.
  AURORA_KERNEL_CHECK(reinterpret_cast<uintptr_t>(p.weight) % 16 == 0 && p.weight_group_stride % 8 == 0 &&
                          reinterpret_cast<uintptr_t>(p.x) % 16 == 0,
                      "tiled grouped GEMM needs 16-byte aligned weights and inputs (weight_group_stride "
                          << p.weight_group_stride << ")");
  const bool swiglu = p.epilogue == GemvEpilogue::kSwiGluBF16;
  const int64_t row_tiles = detail::ceil_div(p.n, swiglu ? kHalfRows : kBlockRows);
  // Position tiles: at most ceil(max_positions_per_group / 128) per slot, and with a bound on all
  // positions, at most one partial tile per slot beyond ceil(total / 128).
  const int64_t max_tiles = detail::ceil_div(std::max(1, p.max_positions_per_group), kBlockPositions);
  int64_t tiles = max_tiles * p.num_group_slots;
  if (p.max_total_positions > 0) {
    tiles = std::min<int64_t>(tiles, detail::ceil_div(p.max_total_positions, kBlockPositions) + p.num_group_slots);
  }
  const int64_t blocks = row_tiles * tiles;
  AURORA_KERNEL_CHECK(blocks < (int64_t{1} << 31),
                      "tiled grouped GEMM grid too large: n " << p.n << ", group slots " << p.num_group_slots);
  const auto kernel = swiglu ? tiled_grouped_gemm_kernel<true> : tiled_grouped_gemm_kernel<false>;
  // Per device; the first launch of each shape is a warm-up, before any capture.
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), kSmemBytes);
  prefer_shared_carveout(reinterpret_cast<const void*>(kernel));
  launch_pdl_hinted(early, kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), kSmemBytes, stream, p, x_stride,
                    y_stride, static_cast<int>(row_tiles), static_cast<int>(max_tiles));
}

}  // namespace aurora::kernels::cuda
