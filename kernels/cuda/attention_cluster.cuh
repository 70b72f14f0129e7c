// Decode-latency paged attention over bf16 caches: one thread-block cluster per (token, kv head).
// Contract: launch_cluster_attention() computes what launch_paged_attention() documents for bf16
// caches, needs no workspace, and returns false (launching nothing) when the device cannot run
// clusters of this kernel, so that the caller falls back to the partitioned kernel. A row's bits
// depend only on its position, the window and the head shape: never on the batch or the grid.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::kernels::cuda::detail {

// Whether bf16-cache attention uses the cluster kernel: yes unless AURORA_CLUSTER_ATTENTION=0
// (then the partitioned shared-memory kernel of round 2), AURORA_LEGACY_ATTENTION=1 or
// AURORA_SAFE_KERNELS=1.
bool cluster_attention_enabled();

bool launch_cluster_attention(const PagedAttentionCudaParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda::detail
