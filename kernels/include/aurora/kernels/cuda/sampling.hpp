// Token sampling on the GPU (twin: cpu::sample): one block per row; greedy rows are an argmax
// (ties to the lower id); sampled rows apply temperature, an exact top-k (radix select on the
// float bits), top-p as a threshold found by bisection over the value bits (the smallest set by
// decreasing probability, ties to the lower id, whose mass reaches top_p), then invert the CDF at
// the row's uniform number walking the kept tokens in id order. Deterministic: fixed-order
// reductions, no atomics. No workspace; logits, rows and out_tokens are device pointers.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/sampling.hpp"

namespace aurora::kernels::cuda {

void launch_sample(const SampleParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda
