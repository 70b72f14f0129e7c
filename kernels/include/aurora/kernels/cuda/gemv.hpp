// Small-batch matrix products for decode, on tensor cores, reading each weight once.
//
// launch_grouped_gemv computes, for every group g (one weight matrix: a dense projection, or one
// routed expert) and every position p of that group, y[p] (+)= x[row(p)] W_g^T with bf16 weights
// [n, k] row-major as checkpoints store them, bf16 inputs, float32 accumulation. Each block owns
// a tile of 16 weight rows (two tiles, gate and up, for the fused SwiGLU epilogue) and all of the
// group's positions (up to 64 per block; more go to further blocks along z); its 8 warps split k,
// stream the weights with 16-byte loads straight into mma.m16n8k16 fragments (tokens are the
// n = 8 side) and reduce through shared memory in a fixed order. Groups come from device memory
// (the router's active-expert list and offsets), so a decode step that reads only the selected
// experts is one graph-capturable launch. Requirements: k % 8 == 0, 16-byte aligned rows.
//
// Two decode options (both keep the result deterministic):
// - split k: given a workspace and tickets (split_workspace / split_tickets), a launch with too few
//   blocks to fill the GPU (small n, few positions) also splits k over blockIdx.z; every split
//   writes its partial tile to the workspace and the last split of each tile to arrive (a
//   self-resetting ticket) sums the partials in split order and applies the epilogue.
//   Splits are chosen so that the whole grid stays resident (one wave). In general the split
//   depends on the grid (rows and expert groups of the launch), so the k reduction order, and the
//   bits of the result, would change with the batch or the experts a GPU holds, and greedy tokens
//   with the GPU count (expert parallelism promises the same tokens on 1 and N GPUs). So by
//   default only dense launches without the RMSNorm prologue of at most kGemvNormMaxPositions
//   positions split (decode o_proj): their instance and grid depend on n and k alone, so a row
//   has the same bits at 1..4 positions and on any GPU count (the same threshold at which the
//   fused norms and the cluster attention switch). AURORA_GEMV_SPLITK=1: every launch may split
//   (the earlier switch, about 5% faster batch-1 decode for Qwen3-30B-A3B); =0: none.
// - RMSNorm prologue: with norm_weight set, the input is the float32 residual norm_x and each
//   block forms bf16(norm_weight * x / rms(x)) for its own k range in shared memory (the same
//   arithmetic as launch_rms_norm), so the norm needs no launch of its own. At most
//   kGemvNormMaxPositions positions per group.
//
// Prefill sizes, and routed experts of larger decode steps: a launch of at least
// tiled_gemm_min_positions(p) positions per group (max_positions_per_group; 65 for one matrix, 16
// or 5 for routed experts, below) without the RMSNorm prologue runs a tiled tensor-core GEMM instead
// (kernels/cuda/grouped_gemm.cu): blocks of 128 weight rows (SwiGLU: 64 gate + 64 up rows) x up to
// 128 positions of one group, k streamed through a cp.async pipeline into swizzled shared tiles,
// Hopper's warpgroup MMA (wgmma) as wide as the tile's positions. Same parameters, groups,
// epilogues and PDL behaviour; it never splits k, and reads nothing back to the host. A position's
// output bits depend only on its row and the weights (not on its group's size, the grid or the
// other groups). AURORA_EXPERT_GEMM=0 keeps the GEMV's 64-position instance there instead (to
// compare).
//
// launch_linear_f32: the float32 twin of cpu::linear on CUDA cores (router, shared-expert gate,
// and the Backend's float32 linear).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/linear.hpp"

namespace aurora::kernels::cuda {

enum class GemvEpilogue : int32_t {
  kStoreF32 = 0,       // y_f32[p][n] = acc (+ bias)
  kAccumulateF32 = 1,  // y_f32[p][n] += acc (+ bias)
  kSwiGluBF16 = 2,     // y_bf16[p][i] = silu(acc_gate[i]) * acc_up[i]; weight rows: gate [0, n), up [n, 2n)
};

struct GroupedGemvParams {
  const bf16* x = nullptr;          // [*, x_stride]
  int64_t x_stride = 0;             // 0 = k
  const int32_t* x_rows = nullptr;  // optional: row(p) = x_rows[p] / x_row_div, else row(p) = p
  int32_t x_row_div = 1;
  const bf16* weight = nullptr;  // group g's matrix at weight + g * weight_group_stride
  int64_t weight_group_stride = 0;
  int32_t n = 0;  // output features (per half for SwiGLU)
  int32_t k = 0;  // input features
  // Groups. Without group_offsets there is one group holding positions [0, num_positions).
  const int32_t* group_offsets = nullptr;  // [num_groups + 1]: positions of group g
  const int32_t* active_groups = nullptr;  // [num_group_slots] group of each slot, or null (= slot)
  const int32_t* num_active = nullptr;     // slots in use, or null (= all)
  int32_t num_group_slots = 1;
  int32_t num_positions = 0;            // one-group form only
  int32_t max_positions_per_group = 0;  // host bound: picks the kernel and the z extent
  // Optional host bound on the positions of all active groups together (0: none); sizes the tiled
  // GEMM's grid (the routed experts of T tokens: T * top_k).
  int32_t max_total_positions = 0;
  GemvEpilogue epilogue = GemvEpilogue::kStoreF32;
  float* y_f32 = nullptr;
  bf16* y_bf16 = nullptr;
  int64_t y_stride = 0;         // 0 = n
  const float* bias = nullptr;  // [n] (float32 epilogues only)
  // Split k (optional): scratch of split_workspace_floats floats and split_tickets_count int32
  // tickets (zero once; each launch leaves them zero).
  float* split_workspace = nullptr;
  int64_t split_workspace_floats = 0;
  int32_t* split_tickets = nullptr;
  int32_t split_tickets_count = 0;
  // RMSNorm prologue (optional): x is then ignored; row(p) of norm_x [*, norm_x_stride] is
  // normalised with norm_weight [k] and norm_eps.
  const float* norm_x = nullptr;
  int64_t norm_x_stride = 0;  // 0 = k
  const float* norm_weight = nullptr;
  float norm_eps = 1e-6f;
  // The group arrays (offsets, active groups, count) were written by a launch before the previous
  // one (the router two launches back): blocks read them, and start their first weight loads,
  // before waiting for the previous kernel (programmatic dependent launch); such a launch may also
  // start early (pdl_mode 2; AURORA_PDL_EXPERTS=0 turns that off).
  bool groups_before_wait = false;
  // Routing by the launch itself (the routed experts' SwiGLU gate_up of a step of <= 4 tokens, at
  // most kSelfRouteMaxExperts experts): instead of waiting for the router kernel to finish, each
  // block waits until *ready reaches num_experts (RouteCudaParams::logits_ready: every logit and
  // the normalised rows written), routes the tokens from the logits with the router's own code
  // (detail::route_token: the same experts), and derives its slot's expert and positions as the
  // router's permutation orders them (active experts ascending, items in token order). So the
  // experts' weights start streaming while the router's last block is still routing and permuting.
  // The group arrays (group_offsets, active_groups, num_active, x_rows with x_row_div = top_k) must
  // still be set: the launches after this one read them; this launch's blocks wait for the router
  // to complete before they let their dependents launch. Off with logits null; ignored (the
  // router's arrays are read after its completion, as without it) when the grid is more than one
  // wave of resident blocks, where every wave would pay the routing: H200, 2026-11-29, batch 4
  // self-routed in 3 waves: Qwen3-30B-A3B 7.04 vs 6.62 ms, OLMoE-1B-7B 2.71-2.74 vs 2.58.
  struct SelfRoute {
    const float* logits = nullptr;  // [num_tokens, num_experts], the router's
    const int32_t* ready = nullptr;
    int32_t num_tokens = 0, num_experts = 0, top_k = 0;
  } self_route;
};
constexpr int32_t kGemvNormMaxPositions = 4;
constexpr int32_t kSelfRouteMaxExperts = 256;
// Whether decode steps route the experts' gate_up for themselves (GroupedGemvParams::self_route):
// on unless AURORA_SELF_ROUTE=0, or the test override.
bool gemv_self_route_enabled();
void set_gemv_self_route(bool on);  // tests
void reset_gemv_self_route();
int64_t gemv_self_routed_launches();  // self-routed launches (or graph captures) so far; tests
void launch_grouped_gemv(const GroupedGemvParams& p, cudaStream_t stream);

// The routed experts' gate_up (SwiGLU) and down projections of a decode step in one launch instead
// of two (at most kExpertFfnMaxPositions positions per expert). Blocks take work items from a queue
// in order, every gate_up tile (group slot, 16 rows) before any down tile; a down tile waits only
// for its own slot's gate_up tiles (a counter per slot), after loading its first weights. So one
// expert's down projection runs while other experts' gate_up tiles still stream, with no launch, no
// drained wave and no ramp between the two. Every tile is computed by launch_grouped_gemv's code
// (the same bits, whatever the order the items run in). Deadlock-free with any number of resident
// blocks (another model's kernels may hold the rest): a waiting item's producers were all taken from
// the queue before it, by blocks that run them without waiting. Split k does not apply.
// With combine.x set, the MoE combine runs in the same launch: the last down tile of each 16 hidden
// rows (a counter per row tile, over the active groups) adds the routed experts' weighted outputs of
// those rows to x, with launch_moe_combine's arithmetic (the same bits); no shared expert and no
// norm (combine.shared_out and combine.norm_weight null). Null combine.x: the caller combines.
// With gate_up.self_route set, every block builds the routing table for all slots once, from the
// logits (GroupedGemvParams::self_route; any grid size: the blocks are persistent), and the combine
// and the dependents' launch wait for the router to complete.
struct ExpertFfnCudaParams {
  GroupedGemvParams gate_up;     // epilogue kSwiGluBF16 into down.x
  GroupedGemvParams down;        // epilogue kStoreF32, the same groups as gate_up
  int32_t* counters = nullptr;   // [expert_ffn_counters(slots, down.n)], zero before the launch (left nonzero)
  MoeCombineCudaParams combine;  // expert_out = down.y_f32; or x null: no combine
};
constexpr int32_t kExpertFfnMaxPositions = 8;
constexpr int32_t expert_ffn_counters(int32_t group_slots, int32_t hidden) {
  return 1 + group_slots + (hidden + 15) / 16;
}
void launch_expert_ffn(const ExpertFfnCudaParams& p, cudaStream_t stream);
// Whether a decode step of `tokens` tokens fuses its experts of `intermediate` rows: steps of at most
// kExpertFfnMaxTokens tokens with long experts (intermediate >= kExpertFfnMinIntermediate). H200,
// 2026-11-29, batch 1 two launches vs fused: Mixtral-8x7B (14336) 8.06 vs 7.85 ms; OLMoE-1B-7B
// (1024) 1.396 vs 1.465, Qwen3-30B-A3B (768) 3.96 vs 4.12 (short experts: many small items at 3
// blocks per multiprocessor); with early launches (05:57 UTC), Mixtral batch 2 12.34-12.38 vs
// 12.28-12.30, batch 4 18.40 vs 18.63-18.64. forced (a caller's choice, e.g. a runner option) 1:
// every step of <= kGemvNormMaxPositions tokens, 0: never, -1: AURORA_FUSED_FFN=1|0 if set, else the
// rule.
constexpr int32_t kExpertFfnMinIntermediate = 4096;
constexpr int32_t kExpertFfnMaxTokens = 2;
bool expert_ffn_for(int32_t tokens, int32_t intermediate, int32_t forced = -1);
// The k splits launch_grouped_gemv would use for these parameters (1 = none); for tests and tuning.
int32_t gemv_splits(const GroupedGemvParams& p);
// Split k for this process, overriding the default rule above; for tests.
void set_gemv_split_k(bool on);  // tests: every launch may split (true) or none (false)
void reset_gemv_split_k();       // back to the default rule (AURORA_GEMV_SPLITK, else dense <= 4)
// Split launches of the decode instance (one matrix, <= 8 positions, long k) with 2 or 4 splits run
// them as warp groups of one block, which add their partial sums in split order: the bits of the
// split launch, without its workspace round trip. On unless AURORA_GEMV_SPLIT_IN_BLOCK=0 (H200,
// 2026-11-29, batch 1 on vs off: Mixtral-8x7B 7.83-7.85 vs 7.87-7.89 ms, Qwen3-30B-A3B 3.68-3.70 vs
// 3.71-3.73, OLMoE-1B-7B 1.322-1.334 vs 1.340-1.354).
void set_gemv_split_in_block(bool on);  // tests
void reset_gemv_split_in_block();       // back to AURORA_GEMV_SPLIT_IN_BLOCK (default on)
// Prefetching decode instances (<= 64 positions per group, 4 warps, with or without the RMSNorm
// prologue): each iteration issues the next one's weight and input loads before its own products
// (the same products in the same order: the same bits at the same k split; a split-k launch's split
// follows the instance's occupancy), for launches with k >= min_k; 0 = none. Default:
// AURORA_GEMV_PREFETCH=N, else 2048 (measured best on the H200). For tests and tuning.
void set_gemv_prefetch_min_k(int32_t min_k);
void reset_gemv_prefetch();  // back to AURORA_GEMV_PREFETCH (else 2048)
// The tiled GEMM takes launches of at least tiled_gemm_min_positions(p) positions per group
// (max_positions_per_group): one matrix from kTiledGemmMinPositions (below, the GEMV, which splits
// k); routed experts (group_offsets set) from kTiledGemmMinRoutedPositions, and from
// kTiledGemmMinLargeExpertPositions where one expert's matrix holds at least kTiledGemmLargeExpert
// elements (SwiGLU: both halves). H200, 2026-11-29, decode ms/step GEMV vs tiled: Mixtral-8x7B
// batch 5 21.25 vs 20.79, 8 23.10 vs 22.13, 16 26.2 vs 24.2, 32 27.4 vs 25.4, 64 35.7 vs 28.1;
// Qwen3-30B-A3B batch 8 9.77 vs 10.49, 16 14.44 vs 13.95, 64 22.8 vs 21.5; OLMoE-1B-7B batch 8
// 3.38 vs 3.52, 16 4.47 vs 4.44, 32 5.33 vs 5.17, 64 6.82 vs 6.48.
constexpr int32_t kTiledGemmMinPositions = 65;
constexpr int32_t kTiledGemmMinRoutedPositions = 16;
constexpr int32_t kTiledGemmMinLargeExpertPositions = 5;
constexpr int64_t kTiledGemmLargeExpert = int64_t{8} << 20;
int32_t tiled_gemm_min_positions(const GroupedGemvParams& p);
// Whether launch_grouped_gemv runs these parameters on the tiled GEMM (see above).
bool gemv_uses_tiled_gemm(const GroupedGemvParams& p);
// The tiled GEMM for this process on (true) or off (false), overriding AURORA_EXPERT_GEMM; for tests.
void set_tiled_gemm(bool on);
void reset_tiled_gemm();  // back to AURORA_EXPERT_GEMM (default on)

void launch_linear_f32(const LinearParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda
