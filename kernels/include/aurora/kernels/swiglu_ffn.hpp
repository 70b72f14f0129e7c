// SwiGLU feed-forward block: y = W_down (silu(W_gate x) * (W_up x)), the routed experts, the
// shared expert and the dense MLP of every supported architecture. silu(a) = a / (1 + exp(-a)).
//
// Weights: gate and up are [intermediate, hidden] (they may be two halves of one fused
// gate_up [2*intermediate, hidden] matrix), down is [hidden, intermediate].
// Contract: rows are independent (batch invariant); the caller passes a workspace of
// swiglu_workspace_floats() floats; no allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct SwiGluFfnParams {
  const float* x = nullptr;       // [num_rows, x_stride]
  const float* w_gate = nullptr;  // [intermediate, hidden]
  const float* w_up = nullptr;    // [intermediate, hidden]
  const float* w_down = nullptr;  // [hidden, intermediate]
  float* y = nullptr;             // [num_rows, y_stride]
  int32_t num_rows = 0;
  int32_t hidden = 0;
  int32_t intermediate = 0;
  int64_t x_stride = 0;  // 0 = hidden
  int64_t y_stride = 0;  // 0 = hidden
};

namespace cpu {
inline int64_t swiglu_workspace_floats(int32_t num_rows, int32_t intermediate) {
  return int64_t{num_rows} * intermediate * 2;
}
void swiglu_ffn(const SwiGluFfnParams& params, float* workspace, int64_t workspace_floats);
}  // namespace cpu

}  // namespace aurora::kernels
