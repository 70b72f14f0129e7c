// Tiled tensor-core grouped GEMM for routed experts (and dense projections) at prefill sizes: the
// launch_grouped_gemv path for more than 64 positions per group (grouped_gemm.cuh).
//
// Weights are the M side (rows of W), positions the N side. A block owns 128 weight rows (for the
// SwiGLU epilogue: 64 gate rows and the 64 matching up rows, so that one thread holds both halves
// of an output) x P positions of one group, and streams k in steps of 64 through a 4-stage
// cp.async pipeline into padded shared memory (rows of 72 bf16 = 144 bytes: the 8 rows an ldmatrix
// phase reads fall on distinct banks). Two instances (tiled_gemm_positions in gemv.hpp picks one):
// - P = 64: 4 warps, 110.6 KB of shared memory, 2 blocks per SM (many small experts: Qwen3, OLMoE);
// - P = 128: 8 warps, 147.5 KB, 1 block per SM (few large experts: Mixtral prefill); the block
//   reads 1.5x fewer operand bytes per MAC from L2, which the 64-position instance was short of.
// Each warp takes 64 rows (4 m16 tiles) x 32 positions (4 n8 tiles) with ldmatrix.x4 and runs
// mma.m16n8k16 (bf16 in, float32 accumulators): 6 ldmatrix.x4 per 16 mma. (32 rows x 64 positions
// needs 2 + 4, the same count; 64 x 32 keeps one warp tile for both instances.) A warp whose 32
// positions all lie past the tile's count skips its ldmatrix and mma (it still copies and syncs):
// the last, partial tile of a group costs the SM's tensor cores only the warps that have positions.
// Rows past n and positions past the group's count are zero-filled by the copies (src-size 0) and
// never stored; so is the k tail past a multiple of 64.
//
// Bits: an output is the sum of the same mma.m16n8k16 steps (k16 slices in k order, from 0) in both
// instances and in any tile position, so the two instances give the same bits (tested): expert
// parallelism may pick another instance on each rank (its average positions per group differ)
// and still match 1 GPU.
//
// Work list: the blocks of one launch walk the position tiles (P positions) of the active slots in
// slot order; slot s with T_s position tiles owns R * T_s consecutive blocks (R: weight-row tiles),
// in the order (row tile, position tile). So the blocks that share a weight tile run together and
// read it once from HBM (a Mixtral expert's gate_up is 235 MB, far beyond L2), and a group's input
// rows (at most a few MB) stay in L2 across its row tiles. Each block finds its slot with one warp's
// prefix sum over the slots' tile counts (read from device memory, like the GEMV's groups); the
// 1-D grid holds R * (a host bound on the tiles) blocks, and those past the last tile return at
// once. (A (position tile, row tile, slot) grid would leave most blocks empty at prefill: 512
// tokens over Qwen3's 128 experts are 8 position tiles per slot for about 1.3 of them used, and an
// empty block still holds one of the two shared-memory slots of its multiprocessor while it reads
// the group arrays.) No further swizzle: with each weight tile read from HBM once and the group's
// inputs in L2, a rasterised order would save L2 hits only. Once a group's inputs outgrow L2
// (Mixtral: ~1700 positions of the down projection, ~6000 of gate_up) each wave re-reads them, but a
// wave's blocks share them (all position tiles of ~132 / T_s row tiles), so the GEMM stays far above
// the ridge point (~700 FLOP per HBM byte at 2048 positions).
#include "grouped_gemm.cuh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "mma.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kBlockRows = 128;  // weight rows per block
constexpr int kHalfRows = kBlockRows / 2;
constexpr int kBlockK = 64;
constexpr int kStages = 4;
constexpr int kSmemStride = kBlockK + 8;    // bf16 per shared row (padding against bank conflicts)
constexpr int kChunksPerRow = kBlockK / 8;  // 16-byte chunks per row and k step
constexpr int kSlotsPerLane = 4;            // work-list scan: 128 slots per warp round
constexpr int kStageA = kBlockRows * kSmemStride;
static_assert((kSmemStride * sizeof(bf16)) % 16 == 0, "16-byte aligned shared rows for cp.async and ldmatrix");

// The shape of the instance of kPositions positions per block: 2 warps along the rows (64 each) x
// kPositions / 32 along the positions.
template <int kPositions>
struct TileShape {
  static constexpr int kBlockPositions = kPositions;
  static constexpr int kWarps = 2 * (kPositions / 32);
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRowStep = kThreads / kChunksPerRow;   // rows between one thread's copies: 16 | 32
  static constexpr int kALoads = kBlockRows / kRowStep;       // weight chunks per thread and stage: 8 | 4
  static constexpr int kBLoads = kBlockPositions / kRowStep;  // input chunks per thread and stage: 4 | 4
  static constexpr int kStageElems = kStageA + kBlockPositions * kSmemStride;
  static constexpr size_t kSmemBytes = size_t{kStages} * kStageElems * sizeof(bf16);  // 110,592 | 147,456
  static constexpr int kBlocksPerSm = kPositions == 64 ? 2 : 1;
  static_assert(kPositions == 64 || kPositions == 128);
  static_assert(kALoads * kRowStep == kBlockRows && kBLoads * kRowStep == kBlockPositions);
  static_assert(kHalfRows % kRowStep == 0, "a thread's copies never straddle the gate/up halves");
  static_assert(kThreads >= kBlockPositions, "one thread per position finds the input rows");
  static_assert(kSmemBytes * kBlocksPerSm <= 227 * 1024, "the blocks per SM fit in shared memory");
};

using detail::cp_async16_zfill;
using detail::ldmatrix_x4;
using detail::mma_16816;

// First shared row of a warp's m16 tile mt: tiles 0, 1 in the first half of the block's rows, 2, 3
// the same rows of the second half (for SwiGLU: tile mt + 2 holds the up rows of gate tile mt).
__device__ __forceinline__ int warp_tile_row(int warp_m, int mt) {
  return (mt >> 1) * kHalfRows + warp_m * 32 + (mt & 1) * 16;
}

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
template <int kBlockPositions>
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

template <int kPositions, bool kSwiGlu>
__global__ void __launch_bounds__(TileShape<kPositions>::kThreads, TileShape<kPositions>::kBlocksPerSm)
    tiled_grouped_gemm_kernel(GroupedGemvParams p, int64_t x_stride, int64_t y_stride, int row_tiles, int max_tiles) {
  using Shape = TileShape<kPositions>;
  constexpr int kBlockPositions = Shape::kBlockPositions, kRowStep = Shape::kRowStep;
  constexpr int kALoads = Shape::kALoads, kBLoads = Shape::kBLoads, kStageElems = Shape::kStageElems;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* smem = reinterpret_cast<bf16*>(smem_raw);
  __shared__ const bf16* x_row[kBlockPositions];  // input row of each of the block's positions
  __shared__ TileWork work;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp & 1, warp_n = warp >> 1;
  const int n = p.n, k = p.k;
  const bool grouped = p.group_offsets || p.active_groups || p.num_active;
  // Weights are constant: they may stream before the wait whenever the group is known without
  // reading what the previous kernel wrote (one dense matrix, or groups_before_wait).
  const bool early_weights = !grouped || p.groups_before_wait;
  if (!early_weights) detail::pdl_wait();

  if (warp == 0) {
    const TileWork w = find_tile<kBlockPositions>(p, static_cast<int>(blockIdx.x), row_tiles, max_tiles);
    if (lane == 0) work = w;
  }
  __syncthreads();
  const int npos = work.npos;
  if (npos <= 0) return;
  const int group = work.group, pos_begin = work.pos_begin, first = work.first;

  // This thread copies 16-byte chunk `kc` of rows tid / 8 + kRowStep i of each stage's tiles.
  const int kc = tid % kChunksPerRow, r_first = tid / kChunksPerRow;
  const int row0 = work.row_tile * (kSwiGlu ? kHalfRows : kBlockRows);  // first output row of the block
  const bf16* W = p.weight + static_cast<int64_t>(group) * p.weight_group_stride;
  const bf16* a_src[kALoads];
#pragma unroll
  for (int i = 0; i < kALoads; ++i) {
    const int r = r_first + kRowStep * i;  // shared row 0..127
    int64_t w_row;
    bool valid;
    if constexpr (kSwiGlu) {
      const int half = r / kHalfRows, out_row = row0 + r % kHalfRows;  // gate row, or its up row n + it
      valid = out_row < n;
      w_row = static_cast<int64_t>(half) * n + out_row;
    } else {
      valid = row0 + r < n;
      w_row = row0 + r;
    }
    a_src[i] = valid ? W + w_row * k + kc * 8 : nullptr;
  }
  auto load_a = [&](int stage, int kt) {
    bf16* sa = smem + stage * kStageElems;
    const int k0 = kt * kBlockK;
    const bool k_in = k0 + kc * 8 < k;  // k % 8 == 0: a chunk is wholly inside or wholly past k
#pragma unroll
    for (int i = 0; i < kALoads; ++i) {
      const bool valid = k_in && a_src[i];
      cp_async16_zfill(sa + (r_first + kRowStep * i) * kSmemStride + kc * 8, valid ? a_src[i] + k0 : p.weight, valid);
    }
  };
  const int k_tiles = (k + kBlockK - 1) / kBlockK;
  // Group 0 of the pipeline holds these weight copies and the first input copies, group s the
  // inputs of stage s (s < kStages - 1), then one group per k step: stage s is complete once
  // groups 0..s are.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_a(s, s);
  }
  if (early_weights) detail::pdl_wait();  // the inputs (x, x_rows) come from earlier launches

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
  const bf16* b_src[kBLoads];
#pragma unroll
  for (int i = 0; i < kBLoads; ++i) {
    const bf16* row = x_row[r_first + kRowStep * i];
    b_src[i] = row ? row + kc * 8 : nullptr;
  }
  auto load_b = [&](int stage, int kt) {
    bf16* sb = smem + stage * kStageElems + kStageA;
    const int k0 = kt * kBlockK;
    const bool k_in = k0 + kc * 8 < k;
#pragma unroll
    for (int i = 0; i < kBLoads; ++i) {
      const bool valid = k_in && b_src[i];
      cp_async16_zfill(sb + (r_first + kRowStep * i) * kSmemStride + kc * 8, valid ? b_src[i] + k0 : p.weight, valid);
    }
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_b(s, s);
    detail::cp_async_commit();
  }

  float acc[4][4][4];
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[mt][nt][j] = 0.0f;

  // ldmatrix addresses of this lane: A (rows of an m16 tile, k halves by lane / 16) and B (two n8
  // tiles x two k halves: matrix i = lane / 8 is n8 tile i / 2, k half i % 2).
  const int a_lane_row = lane & 15, a_lane_col = (lane >> 4) * 8;
  const int b_lane_row = warp_n * 32 + ((lane >> 4) << 3) + (lane & 7), b_lane_col = ((lane >> 3) & 1) * 8;
  // A warp whose positions all lie past the tile's count leaves the tensor cores to the others.
  const bool warp_has_positions = warp_n * 32 < npos;
  for (int kt = 0; kt < k_tiles; ++kt) {
    detail::cp_async_wait<kStages - 2>();  // this thread's copies of stage kt have landed
    __syncthreads();                       // everyone's have; and stage kt - 1 is no longer read
    const int next = kt + kStages - 1;
    if (next < k_tiles) {
      load_a(next % kStages, next);
      load_b(next % kStages, next);
    }
    detail::cp_async_commit();          // possibly empty: keeps one group per k step
    if (!warp_has_positions) continue;  // its copies are in flight; the next sync is everyone's
    const bf16* sa = smem + (kt % kStages) * kStageElems;
    const bf16* sb = sa + kStageA;
#pragma unroll
    for (int ks = 0; ks < kBlockK / 16; ++ks) {
      uint32_t a[4][4], b[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        ldmatrix_x4(a[mt], sa + (warp_tile_row(warp_m, mt) + a_lane_row) * kSmemStride + ks * 16 + a_lane_col);
      }
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        ldmatrix_x4(r, sb + (b_lane_row + np * 16) * kSmemStride + ks * 16 + b_lane_col);
        b[2 * np][0] = r[0];
        b[2 * np][1] = r[1];
        b[2 * np + 1][0] = r[2];
        b[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16816(acc[mt][nt], a[mt], b[nt]);
    }
  }
  detail::cp_async_wait<0>();
  detail::pdl_launch_dependents();  // late: only the epilogue remains

  // Accumulator j of (mt, nt): shared row warp_tile_row(mt) + lane / 4 + 8 (j / 2), position
  // warp_n * 32 + nt * 8 + 2 (lane % 4) + j % 2.
  const int g = lane >> 2, q = lane & 3;
  constexpr int kOutTiles = kSwiGlu ? 2 : 4;  // SwiGLU: gate tiles 0, 1; their up rows are tiles 2, 3
#pragma unroll
  for (int mt = 0; mt < kOutTiles; ++mt) {
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int row = row0 + warp_tile_row(warp_m, mt) + g + 8 * (j >> 1);
        const int col = warp_n * 32 + nt * 8 + 2 * q + (j & 1);
        if (row >= n || col >= npos) continue;
        const int64_t out = (static_cast<int64_t>(pos_begin) + first + col) * y_stride + row;
        if constexpr (kSwiGlu) {
          p.y_bf16[out] = __float2bfloat16(detail::silu(acc[mt][nt][j]) * acc[mt + 2][nt][j]);
        } else {
          const float v = acc[mt][nt][j] + (p.bias ? p.bias[row] : 0.0f);
          if (p.epilogue == GemvEpilogue::kAccumulateF32) {
            p.y_f32[out] += v;
          } else {
            p.y_f32[out] = v;
          }
        }
      }
    }
  }
}

// Two blocks per multiprocessor need 2 x 111 KB of shared memory, one 128-position block 148 KB:
// ask for the largest carveout (a hint the driver may otherwise resolve towards L1), once per
// (device, kernel) like ensure_dynamic_smem.
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

template <int kPositions>
void launch_instance(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, bool early, cudaStream_t stream) {
  using Shape = TileShape<kPositions>;
  const bool swiglu = p.epilogue == GemvEpilogue::kSwiGluBF16;
  const int64_t row_tiles = detail::ceil_div(p.n, swiglu ? kHalfRows : kBlockRows);
  // Position tiles: at most ceil(max_positions_per_group / P) per slot, and with a bound on all
  // positions, at most one partial tile per slot beyond ceil(total / P).
  const int64_t max_tiles = detail::ceil_div(std::max(1, p.max_positions_per_group), kPositions);
  int64_t tiles = max_tiles * p.num_group_slots;
  if (p.max_total_positions > 0) {
    tiles = std::min<int64_t>(tiles, detail::ceil_div(p.max_total_positions, kPositions) + p.num_group_slots);
  }
  const int64_t blocks = row_tiles * tiles;
  AURORA_KERNEL_CHECK(blocks < (int64_t{1} << 31),
                      "tiled grouped GEMM grid too large: n " << p.n << ", group slots " << p.num_group_slots);
  const auto kernel =
      swiglu ? tiled_grouped_gemm_kernel<kPositions, true> : tiled_grouped_gemm_kernel<kPositions, false>;
  // Per device; the first launch of each shape is a warm-up, before any capture.
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), Shape::kSmemBytes);
  prefer_shared_carveout(reinterpret_cast<const void*>(kernel));
  launch_pdl_hinted(early, kernel, dim3(static_cast<unsigned>(blocks)), dim3(Shape::kThreads), Shape::kSmemBytes,
                    stream, p, x_stride, y_stride, static_cast<int>(row_tiles), static_cast<int>(max_tiles));
}

// The instance forced by set_tiled_gemm_positions (64 | 128), or 0: AURORA_EXPERT_GEMM_TILE, else
// the rule.
std::atomic<int> g_positions_override{0};

// AURORA_EXPERT_GEMM_TILE, read once: 64 or 128, or 0 when unset (or empty). Any other value is an
// error (a mistyped A/B switch must not measure the default silently); thrown at every launch.
int env_tile_positions() {
  static const int positions = [] {
    const char* v = std::getenv("AURORA_EXPERT_GEMM_TILE");
    if (!v || !*v) return 0;
    const std::string s(v);
    return s == "64" ? 64 : s == "128" ? 128 : -1;
  }();
  AURORA_KERNEL_CHECK(positions >= 0, "AURORA_EXPERT_GEMM_TILE must be 64 or 128, got '"
                                          << std::getenv("AURORA_EXPERT_GEMM_TILE") << "'");
  return positions;
}

}  // namespace

int32_t tiled_gemm_positions(const GroupedGemvParams& p) {
  const int forced = g_positions_override.load(std::memory_order_relaxed);
  if (forced != 0) return forced;
  if (const int env = env_tile_positions(); env != 0) return env;
  // Positions of all slots together: the caller's bound, else what the grid is sized for (one
  // group form: every slot holds num_positions).
  const int64_t slots = std::max(1, p.num_group_slots);
  int64_t total = slots * std::max(0, p.group_offsets ? p.max_positions_per_group : p.num_positions);
  if (p.group_offsets && p.max_total_positions > 0) total = std::min<int64_t>(total, p.max_total_positions);
  return total >= int64_t{kTiledGemm128MinAverage} * slots ? 128 : 64;
}

void set_tiled_gemm_positions(int32_t positions) {
  AURORA_KERNEL_CHECK(positions == 64 || positions == 128,
                      "tiled GEMM instances have 64 or 128 positions per block, got " << positions);
  g_positions_override.store(positions, std::memory_order_relaxed);
}
void reset_tiled_gemm_positions() { g_positions_override.store(0, std::memory_order_relaxed); }

void launch_tiled_grouped_gemm(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, bool early,
                               cudaStream_t stream) {
  // cp.async copies 16 bytes: weight and input rows must start 16-byte aligned.
  AURORA_KERNEL_CHECK(reinterpret_cast<uintptr_t>(p.weight) % 16 == 0 && p.weight_group_stride % 8 == 0 &&
                          reinterpret_cast<uintptr_t>(p.x) % 16 == 0,
                      "tiled grouped GEMM needs 16-byte aligned weights and inputs (weight_group_stride "
                          << p.weight_group_stride << ")");
  if (tiled_gemm_positions(p) == 128) {
    launch_instance<128>(p, x_stride, y_stride, early, stream);
  } else {
    launch_instance<64>(p, x_stride, y_stride, early, stream);
  }
}

}  // namespace aurora::kernels::cuda
