// The tiled tensor-core grouped GEMM behind launch_grouped_gemv at prefill sizes (private to
// kernels/cuda).
//
// Contract: computes exactly what launch_grouped_gemv documents (gemv.hpp) for a launch without the
// RMSNorm prologue: the same groups (group_offsets / active_groups / num_active read from device
// memory), row gather, weights, strides and epilogues. launch_grouped_gemv calls it when
// gemv_uses_tiled_gemm(p); it has already checked n, k (k % 8 == 0), the strides and the epilogue's
// outputs. Every output element is the sum of the same k16 products in k order (no split k, no
// atomics): the bits depend only on the operands, not on the grid, the other groups or the size of
// the element's group.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/gemv.hpp"

namespace aurora::kernels::cuda {

// early: launch with programmatic dependent launch allowed as a small (hinted) grid would be: the
// caller's groups_before_wait launches (see GroupedGemvParams::groups_before_wait).
void launch_tiled_grouped_gemm(const GroupedGemvParams& p, int64_t x_stride, int64_t y_stride, bool early,
                               cudaStream_t stream);

}  // namespace aurora::kernels::cuda
