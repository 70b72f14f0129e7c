// The routed experts of small decode steps on the grouped GEMV's block (gemv_block.cuh): the gate_up
// that routes for itself (GroupedGemvParams::self_route) and the fused expert FFN
// (launch_expert_ffn), which may route for itself too.
#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "gemv_block.cuh"
#include "moe_combine.cuh"
#include "route_token.cuh"

namespace aurora::kernels::cuda {
namespace {
using namespace gemv_impl;

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

std::atomic<int> g_self_route_override{-1};
std::atomic<int64_t> g_self_routed_launches{0};

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

}  // namespace

// Every wave of a larger grid would pay the routing (H200, 2026-11-29: batch 4 in 3 waves, Qwen3-30B-A3B
// 7.04 vs 6.62 ms).
bool gemv_impl::launch_self_routed(const GroupedGemvParams& p, int64_t x_stride, cudaStream_t stream) {
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

bool gemv_self_route_enabled() {
  const int mode = g_self_route_override.load(std::memory_order_relaxed);
  if (mode >= 0) return mode == 1;
  static const bool on = !env_is("AURORA_SELF_ROUTE", '0');
  return on;
}
int64_t gemv_self_routed_launches() { return g_self_routed_launches.load(std::memory_order_relaxed); }
void set_gemv_self_route(bool on) { g_self_route_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void reset_gemv_self_route() { g_self_route_override.store(-1, std::memory_order_relaxed); }

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

}  // namespace aurora::kernels::cuda
