// Element types of GPU tensors. Activations that feed matrix products are bf16, everything that
// accumulates (residual stream, logits, router, norms) is float32; the KV cache is bf16 (or f32 in
// the Backend's float32 ops). Kernels take void pointers plus a DType so that headers stay plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aurora::kernels::cuda {

enum class DType : int32_t { kF32 = 0, kBF16 = 1 };

inline size_t dtype_bytes(DType t) { return t == DType::kF32 ? 4 : 2; }

}  // namespace aurora::kernels::cuda

#include <cuda_bf16.h>

namespace aurora::kernels::cuda {
using bf16 = __nv_bfloat16;
}  // namespace aurora::kernels::cuda
