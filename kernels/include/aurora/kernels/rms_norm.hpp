// RMSNorm: y = weight * x / sqrt(mean(x^2) + eps), row by row, as Hugging Face's *RMSNorm does it
// in float32. Also used for per-head q/k norm (rows = tokens * heads, dim = head_dim).
//
// Contract: rows are independent; x == y (in place) is allowed. No allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct RmsNormParams {
  const float* x = nullptr;       // [num_rows, dim] (row stride = dim)
  const float* weight = nullptr;  // [dim]
  float* y = nullptr;             // [num_rows, dim]; may equal x
  int32_t num_rows = 0;
  int32_t dim = 0;
  float eps = 1e-6f;
};

namespace cpu {
void rms_norm(const RmsNormParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
