// Decode-latency paged attention over bf16 caches: one thread-block cluster per (token, kv head).
// Contract: launch_cluster_attention() computes what launch_paged_attention() documents for bf16
// caches, needs no workspace, and returns false (launching nothing) when the device cannot run
// clusters of this kernel, so that the caller falls back to the partitioned kernel. A row's bits
// depend only on its position, the window and the head shape: never on the batch or the grid.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::kernels::cuda::detail {

// Whether bf16-cache attention over `num_tokens` tokens uses the cluster kernel by default: for
// launches of at most kClusterAttentionAutoTokens tokens (batch-1..4 decode: measured faster on
// the H200, 2026-11-28 20:10 UTC; slower at batch 16 and 64, where the partitioned shared-memory
// kernel fills the GPU better). AURORA_CLUSTER_ATTENTION=1: always, =0: never; never with
// AURORA_LEGACY_ATTENTION=1 or AURORA_SAFE_KERNELS=1. PagedAttentionCudaParams::cluster_blocks != 0
// forces it (tests).
bool cluster_attention_for(int32_t num_tokens);

// Whether the runner folds the qkv prologue into the cluster kernel: only with
// AURORA_FUSED_PROLOGUE=1 (measured slower at batch 1 on Qwen3-30B-A3B and OLMoE-1B-7B: 20:10 UTC),
// and never with AURORA_LEGACY_PROLOGUE=1 (the folded arithmetic is the warp prologue's).
bool prologue_fold_allowed();

bool launch_cluster_attention(const PagedAttentionCudaParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda::detail
