#include "aurora/kernels/elementwise.hpp"

#include <algorithm>
#include <cmath>

namespace aurora::kernels::cpu {

void add(const AddParams& p) {
  for (int64_t i = 0; i < p.num_elements; ++i) p.y[i] += p.x[i];
}

void sigmoid_gate_add(const SigmoidGateAddParams& p) {
  for (int32_t r = 0; r < p.num_rows; ++r) {
    const float g = 1.0f / (1.0f + std::exp(-p.gate[r]));
    float* y = p.y + int64_t{r} * p.dim;
    const float* x = p.x + int64_t{r} * p.dim;
    for (int32_t i = 0; i < p.dim; ++i) y[i] += g * x[i];
  }
}

void clamp(const ClampParams& p) {
  for (int64_t i = 0; i < p.num_elements; ++i) p.x[i] = std::clamp(p.x[i], -p.limit, p.limit);
}

void silu_mul(const SiluMulParams& p) {
  const int64_t stride = p.gate_up_stride ? p.gate_up_stride : int64_t{2} * p.intermediate;
  for (int32_t r = 0; r < p.num_rows; ++r) {
    const float* g = p.gate_up + r * stride;
    const float* u = g + p.intermediate;
    float* out = p.out + int64_t{r} * p.intermediate;
    for (int32_t i = 0; i < p.intermediate; ++i) out[i] = (g[i] / (1.0f + std::exp(-g[i]))) * u[i];
  }
}

}  // namespace aurora::kernels::cpu
