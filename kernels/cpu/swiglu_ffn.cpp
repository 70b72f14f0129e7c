#include "aurora/kernels/swiglu_ffn.hpp"

#include <cmath>

#include "aurora/kernels/kernel_check.hpp"
#include "aurora/kernels/linear.hpp"

namespace aurora::kernels::cpu {

void swiglu_ffn(const SwiGluFfnParams& p, float* workspace, int64_t workspace_floats) {
  if (p.num_rows == 0) return;
  AURORA_KERNEL_CHECK(workspace_floats >= swiglu_workspace_floats(p.num_rows, p.intermediate),
                      "swiglu workspace too small");
  float* gate = workspace;
  float* up = workspace + int64_t{p.num_rows} * p.intermediate;
  LinearParams lin;
  lin.x = p.x;
  lin.x_stride = p.x_stride;
  lin.num_rows = p.num_rows;
  lin.in_features = p.hidden;
  lin.out_features = p.intermediate;
  lin.weight = p.w_gate;
  lin.y = gate;
  linear(lin);
  lin.weight = p.w_up;
  lin.y = up;
  linear(lin);
  const int64_t n = int64_t{p.num_rows} * p.intermediate;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
  LinearParams down;
  down.x = gate;
  down.weight = p.w_down;
  down.y = p.y;
  down.y_stride = p.y_stride;
  down.num_rows = p.num_rows;
  down.in_features = p.intermediate;
  down.out_features = p.hidden;
  linear(down);
}

}  // namespace aurora::kernels::cpu
