// Decode-latency paged attention over bf16 caches: one thread-block cluster per (token, kv head).
// Contract: launch_cluster_attention() computes what launch_paged_attention() documents for bf16
// caches, needs no workspace, and returns false (launching nothing) when the device cannot run
// clusters of this kernel, so that the caller falls back to the partitioned kernel. A row's bits
// depend only on its position, the window and the head shape: never on the batch or the grid.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::kernels::cuda::detail {

// Whether bf16-cache attention uses the cluster kernel by default: only with
// AURORA_CLUSTER_ATTENTION=1 (and neither AURORA_LEGACY_ATTENTION=1 nor AURORA_SAFE_KERNELS=1);
// otherwise the partitioned shared-memory kernel. Off by default: its final form has not run on a
// GPU yet (docs/cuda.md). PagedAttentionCudaParams::cluster_blocks > 0 forces it (tests).
bool cluster_attention_enabled();

// Whether the qkv prologue may run inside the cluster kernel: unless AURORA_FUSED_PROLOGUE=0 or
// AURORA_LEGACY_PROLOGUE=1 (the folded arithmetic is the warp prologue's).
bool prologue_fold_allowed();

bool launch_cluster_attention(const PagedAttentionCudaParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda::detail
