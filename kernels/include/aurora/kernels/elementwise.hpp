// Small element-wise ops of the decoder: residual add, a per-row sigmoid gate (Qwen2-MoE's shared
// expert), clamping (OLMoE's clip_qkv) and SwiGLU's silu(gate) * up.
// Contract: no allocation; in-place where the names say so.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct AddParams {
  float* y = nullptr;  // y += x
  const float* x = nullptr;
  int64_t num_elements = 0;
};

struct SigmoidGateAddParams {
  float* y = nullptr;           // [num_rows, dim]: y += sigmoid(gate[r]) * x
  const float* x = nullptr;     // [num_rows, dim]
  const float* gate = nullptr;  // [num_rows] (pre-sigmoid logits)
  int32_t num_rows = 0;
  int32_t dim = 0;
};

// SwiGLU's activation on a fused gate|up row: out[r][i] = silu(gate_up[r][i]) * gate_up[r][I + i].
struct SiluMulParams {
  const float* gate_up = nullptr;  // [num_rows, gate_up_stride]
  float* out = nullptr;            // [num_rows, intermediate]
  int32_t num_rows = 0;
  int32_t intermediate = 0;
  int64_t gate_up_stride = 0;  // 0 = 2 * intermediate
};

struct ClampParams {
  float* x = nullptr;
  int64_t num_elements = 0;
  float limit = 0.0f;  // clamp to [-limit, limit]
};

namespace cpu {
void add(const AddParams& params);
void sigmoid_gate_add(const SigmoidGateAddParams& params);
void clamp(const ClampParams& params);
void silu_mul(const SiluMulParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
