// The GPU twin of cpu::regroup_by_key (kernels/moe_exchange.hpp): one block, experts' counts
// scanned in key order in shared memory, then every item moved to its key-sorted position.
// Inputs and outputs in device memory; num_experts <= kMaxRoutedExperts. Graph-safe; stream last.
#pragma once

#include <cuda_runtime.h>

#include "aurora/kernels/moe_exchange.hpp"

namespace aurora::kernels::cuda {

void launch_regroup_by_key(const RegroupByKeyParams& p, cudaStream_t stream);

}  // namespace aurora::kernels::cuda
