// Small GPU ops: embedding lookup, residual add, the Qwen2-MoE shared-expert gate, clamping,
// SwiGLU's silu(gate) * up, row gathers, dtype conversion and on-device random initialisation.
// The float32 variants take the CPU twins' parameter structs (kernels/*.hpp) with device pointers.
//
// Contract (all launch_* here and in kernels/cuda): parameters in, stream last; no allocation, no
// synchronisation, safe to capture in a CUDA graph; launch errors throw CudaError.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/embedding.hpp"
#include "aurora/kernels/moe_permute.hpp"

namespace aurora::kernels::cuda {

// out[t] = table[ids[t]] (table float32 or bf16; out float32).
struct EmbeddingCudaParams {
  const int32_t* ids = nullptr;  // [num_tokens]
  const void* table = nullptr;   // [vocab_size, hidden]
  DType table_dtype = DType::kBF16;
  float* out = nullptr;  // [num_tokens, hidden]
  int32_t num_tokens = 0;
  int32_t hidden = 0;
  int32_t vocab_size = 0;  // ids outside [0, vocab) give a zero row (checked on the host at submit)
};
void launch_embedding(const EmbeddingCudaParams& p, cudaStream_t stream);
// The float32 twin of cpu::embedding.
void launch_embedding(const EmbeddingParams& p, cudaStream_t stream);

void launch_add(const AddParams& p, cudaStream_t stream);
void launch_sigmoid_gate_add(const SigmoidGateAddParams& p, cudaStream_t stream);
void launch_clamp(const ClampParams& p, cudaStream_t stream);
void launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream);

// act[r][i] = silu(gate_up[r][i]) * gate_up[r][inter + i]  (twin: cpu::silu_mul).
struct SiluMulCudaParams {
  const float* gate_up = nullptr;  // [num_rows, gate_up_stride], gate then up
  int64_t gate_up_stride = 0;      // 0 = 2 * intermediate
  float* out_f32 = nullptr;        // [num_rows, out_stride] or null (may be gate_up: in place)
  bf16* out_bf16 = nullptr;        // [num_rows, out_stride] or null
  int32_t num_rows = 0;
  int32_t intermediate = 0;
  int64_t out_stride = 0;  // 0 = intermediate
};
void launch_silu_mul(const SiluMulCudaParams& p, cudaStream_t stream);

// dst[r] = src[rows[r] / row_div] for bf16 rows (gathers a routed expert's inputs for cuBLASLt).
struct GatherRowsBf16Params {
  const bf16* src = nullptr;
  int64_t src_stride = 0;
  const int32_t* rows = nullptr;  // [num_rows]
  int32_t row_div = 1;
  bf16* dst = nullptr;  // [num_rows, row_elems]
  int32_t num_rows = 0;
  int32_t row_elems = 0;  // multiple of 8
};
void launch_gather_rows_bf16(const GatherRowsBf16Params& p, cudaStream_t stream);

void launch_f32_to_bf16(const float* src, bf16* dst, int64_t n, cudaStream_t stream);
void launch_bf16_to_f32(const bf16* src, float* dst, int64_t n, cudaStream_t stream);

// Fills dst with mean + stddev * z, z ~ U(-sqrt(3), sqrt(3)) (unit variance) from a counter-based
// hash of (seed, index): the same seed gives the same tensor on any GPU, no host copy involved.
void launch_random_fill(void* dst, DType dtype, int64_t n, uint64_t seed, float stddev, float mean,
                        cudaStream_t stream);

}  // namespace aurora::kernels::cuda
