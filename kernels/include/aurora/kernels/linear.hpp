// Linear layer y = x W^T (+ bias): the matrix product behind every projection, expert FFN and the
// LM head. Weights are row-major [out_features, in_features], as Hugging Face stores nn.Linear.
//
// Contract (all implementations): each output row depends only on its own input row, and the
// accumulation order of a dot product is fixed, so a row's result is bit-identical whatever the
// batch around it (batch invariance: the same request gives the same tokens alone or in a batch,
// on one rank or eight). No allocation; x and y must not overlap.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct LinearParams {
  const float* x = nullptr;       // [num_rows, x_stride]
  const float* weight = nullptr;  // [out_features, in_features]
  const float* bias = nullptr;    // [out_features] or null
  float* y = nullptr;             // [num_rows, y_stride]
  int32_t num_rows = 0;
  int32_t in_features = 0;
  int32_t out_features = 0;
  int64_t x_stride = 0;     // 0 = in_features
  int64_t y_stride = 0;     // 0 = out_features
  bool accumulate = false;  // y += x W^T instead of y = x W^T
};

namespace cpu {
void linear(const LinearParams& params);
// The dot product every CPU kernel uses (fixed order: 8 interleaved partial sums, then a tree).
float dot(const float* a, const float* b, int32_t n);
}  // namespace cpu

}  // namespace aurora::kernels
