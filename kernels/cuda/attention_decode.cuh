// Decode attention on tensor cores (attention_decode.cu): the default bf16-cache kernel for launches
// the cluster kernel does not take.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::kernels::cuda::detail {

// On unless AURORA_DECODE_MMA_ATTENTION=0 (read once): then the partitioned kernel, as before.
bool decode_mma_attention_enabled();
// Whether this launch of <= kClusterAttentionAutoTokens tokens takes it instead of the cluster
// kernel (set_small_decode_attention in attention.hpp says where).
bool decode_mma_attention_small(const PagedAttentionCudaParams& p);
// bf16 cache, head_dim 64 or 128, <= 16 query heads per kv head, bf16 or float32 output, and
// p.decode_mma_range 0 or a multiple of 64.
bool decode_mma_attention_supports(const PagedAttentionCudaParams& p);
// Keys per range for this launch: p.decode_mma_range, else 64 for launches of <=
// kClusterAttentionAutoTokens tokens and 512 for larger ones.
int32_t decode_mma_attention_range_keys(const PagedAttentionCudaParams& p);
// Contexts longer than one range of keys leave each range's (max, sum, output) here and the last
// block of a (token, kv head) merges them: tickets[token * kv heads + kv head] (zero at first,
// self-resetting), part_out [tokens * q heads][max_ranges][head_dim], part_ml [... ][max_ranges][2].
struct DecodeAttentionWorkspace {
  int32_t* tickets = nullptr;
  float* part_out = nullptr;
  float* part_ml = nullptr;
  int32_t max_ranges = 0;
};
// The ranges of the grid for contexts of at most `context` positions (the window's start rounded
// down to a step may add keys before the first).
int32_t decode_mma_attention_ranges(int32_t context, int32_t range_keys);
void launch_decode_mma_attention(const PagedAttentionCudaParams& p, const DecodeAttentionWorkspace& wsp,
                                 cudaStream_t stream);

}  // namespace aurora::kernels::cuda::detail
