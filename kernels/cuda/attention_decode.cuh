// Decode attention on tensor cores (attention_decode.cu): the default bf16-cache kernel for launches
// the cluster kernel does not take.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::kernels::cuda::detail {

// On unless AURORA_DECODE_MMA_ATTENTION=0 (read once): then the partitioned kernel, as before.
bool decode_mma_attention_enabled();
// bf16 cache, head_dim 64 or 128, <= 16 query heads per kv head, bf16 or float32 output.
bool decode_mma_attention_supports(const PagedAttentionCudaParams& p);
void launch_decode_mma_attention(const PagedAttentionCudaParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda::detail
