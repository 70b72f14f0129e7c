#include "aurora/kernels/rms_norm.hpp"

#include <cmath>

#include "dot_rows.hpp"

namespace aurora::kernels::cpu {

void rms_norm(const RmsNormParams& p) {
  for (int32_t r = 0; r < p.num_rows; ++r) {
    const float* x = p.x + int64_t{r} * p.dim;
    float* y = p.y + int64_t{r} * p.dim;
    const float mean_square = detail::dot_one(x, x, p.dim) / static_cast<float>(p.dim);
    const float inv_rms = 1.0f / std::sqrt(mean_square + p.eps);
    for (int32_t i = 0; i < p.dim; ++i) y[i] = p.weight[i] * (x[i] * inv_rms);
  }
}

}  // namespace aurora::kernels::cpu
