// MoE routing and token permutation on the GPU.
//
// - launch_topk_routing / launch_permute / launch_combine: float32 twins of the cpu:: ops.
// - launch_route: the decode/prefill router in one launch: router logits (float32 weights and
//   inputs, so that expert choices match the float32 reference), softmax, top-k with the
//   architecture's renormalisation, then (in the last block to finish) a stable counting sort of
//   the (token, choice) items by expert: per-expert offsets, the permutation both ways, the
//   ascending list of experts that received tokens (device-side ids for the grouped GEMV, so the
//   step stays graph-capturable) and per-expert token counts for routing statistics. Launches of
//   more than 64 tokens without the fused norm (prefill) compute the logits 16 experts x 8 tokens per
//   block, with the same bits per token as the small-batch kernels.
// - launch_moe_combine: x += sum_j w_j * expert_out[pos(t, j)] (experts in increasing id order)
//   [+ sigmoid(gate) * shared_out], then optionally the next RMSNorm of x (float32 and/or bf16).
//   One block per token with the norm; without it, blocks of 512 elements of a row (small decode
//   batches fuse the next norm into its consumer: the qkv GEMV's prologue).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "aurora/kernels/moe_routing.hpp"

namespace aurora::kernels::cuda {

void launch_topk_routing(const TopKRoutingParams& p, cudaStream_t stream);
void launch_permute(const PermuteParams& p, cudaStream_t stream);
void launch_combine(const CombineParams& p, cudaStream_t stream);

constexpr int32_t kMaxRoutedExperts = 1024;
constexpr int32_t kMaxTopK = 16;

struct RouteCudaParams {
  const float* x = nullptr;                     // [num_tokens, hidden] (post-attention RMSNorm, float32; the
                                                // residual when norm_weight is set)
  const float* router = nullptr;                // [num_experts, hidden] float32
  float* logits = nullptr;                      // [num_tokens, num_experts] scratch
  int32_t* topk_ids = nullptr;                  // [num_tokens, top_k] by decreasing weight
  float* topk_weights = nullptr;                // [num_tokens, top_k]
  int32_t* expert_offsets = nullptr;            // [num_experts + 1]
  int32_t* permuted_item = nullptr;             // [num_tokens * top_k]: item at each permuted position
  int32_t* item_position = nullptr;             // [num_tokens * top_k]: permuted position of each item
  int32_t* active_experts = nullptr;            // [num_experts]: experts with tokens, ascending
  int32_t* num_active = nullptr;                // [1]
  int64_t* expert_tokens = nullptr;             // [num_experts] += tokens routed per expert, or null
  const int32_t* num_counted_tokens = nullptr;  // only tokens below this count are added (padding), or null = all
  int32_t* ticket = nullptr;                    // [route_ticket_count(num_tokens)], zero once; resets itself
  int32_t num_tokens = 0;
  int32_t hidden = 0;
  int32_t num_experts = 0;
  int32_t top_k = 0;
  TopKNormalization normalization = TopKNormalization::kRenormalize;
  // Fused RMSNorm (optional; for small decode batches): the router reads norm_weight * x / rms(x),
  // and the normalised rows are written to norm_out / norm_out_bf16 (either may be null).
  const float* norm_weight = nullptr;  // [hidden]
  float eps = 1e-6f;
  float* norm_out = nullptr;      // [num_tokens, hidden]
  bf16* norm_out_bf16 = nullptr;  // [num_tokens, hidden]
  // <= 4 tokens, with AURORA_CLUSTER_ROUTER=1 or force_cluster (tests): one thread-block cluster
  // computes the logits and block 0 routes them (no ticket); allow_cluster = false forces the
  // ticket kernel. Same bits either way.
  bool allow_cluster = true;
  bool force_cluster = false;
  // Optional (<= 4 tokens; the ticket kernel, never the cluster one): every block adds 1 here once
  // its logits (and, for expert 0, the normalised rows) are written and fenced, so that a launch
  // running concurrently (the experts' gate_up routing for itself, gemv.hpp) sees all of them when
  // it reaches num_experts. Zero before the launch; left at num_experts.
  int32_t* logits_ready = nullptr;
};
void launch_route(const RouteCudaParams& p, cudaStream_t stream);
// Tickets launch_route needs for up to max_tokens tokens: one per group of 4 tokens (the group's last
// block routes them) and one for the permutation.
int32_t route_ticket_count(int32_t max_tokens);

struct MoeCombineCudaParams {
  const float* expert_out = nullptr;  // [num_tokens * top_k, expert_out_stride], permuted order
  int64_t expert_out_stride = 0;      // 0 = hidden
  const int32_t* item_position = nullptr;
  const int32_t* topk_ids = nullptr;
  const float* topk_weights = nullptr;
  const float* shared_out = nullptr;   // [num_tokens, hidden] or null
  const float* shared_gate = nullptr;  // [num_tokens] pre-sigmoid, or null (= weight 1)
  float* x = nullptr;                  // [num_tokens, hidden] residual, updated in place
  const float* norm_weight = nullptr;  // next RMSNorm, or null
  float eps = 1e-6f;
  float* norm_out = nullptr;      // [num_tokens, hidden] float32 or null
  bf16* norm_out_bf16 = nullptr;  // [num_tokens, hidden] bf16 or null
  int32_t num_tokens = 0;
  int32_t top_k = 0;
  int32_t hidden = 0;
};
void launch_moe_combine(const MoeCombineCudaParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda
