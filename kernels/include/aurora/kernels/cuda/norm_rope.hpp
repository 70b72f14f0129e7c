// RMSNorm, RoPE and the attention prologue on the GPU.
//
// - launch_rms_norm: y = weight * x / sqrt(mean(x^2) + eps) in float32 (twin: cpu::rms_norm), with an
//   optional row gather and optional float32 and/or bf16 outputs (the bf16 copy feeds a GEMM).
// - launch_rope: the float32 twin of cpu::rope (inv_freq in device memory).
// - launch_qkv_prologue: everything between the fused QKV projection and attention, one block per
//   (token, q/k/v head) up to 8 tokens, else one per token; head_dim <= 256: bias, q/k RMSNorm (per head or over the
//   whole projection), clamp, RoPE, q out in float32, k and v written into the paged KV cache (bf16 or float32). Twin:
//   the CPU executor's sequence linear bias -> rms_norm -> clamp -> rope -> write_kv_cache.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "aurora/kernels/rope.hpp"

namespace aurora::kernels::cuda {

struct RmsNormCudaParams {
  const float* x = nullptr;       // [*, x_stride]
  int64_t x_stride = 0;           // 0 = dim
  const int32_t* rows = nullptr;  // optional: output row r reads x row rows[r]
  const float* weight = nullptr;  // [dim]
  float* y = nullptr;             // [num_rows, dim] float32, or null; may equal x (no gather)
  bf16* y_bf16 = nullptr;         // [num_rows, dim] bf16, or null
  int32_t num_rows = 0;
  int32_t dim = 0;
  float eps = 1e-6f;
};
void launch_rms_norm(const RmsNormCudaParams& p, cudaStream_t stream);
void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);  // float32 twin

void launch_rope(const RopeParams& p, cudaStream_t stream);  // float32 twin, inv_freq on device

enum class QkNormMode : int32_t { kNone = 0, kPerHead = 1, kFull = 2 };

struct QkvPrologueParams {
  const float* qkv = nullptr;   // [num_tokens, q_dim + 2 * kv_dim]: q | k | v
  const float* bias = nullptr;  // [q_dim + 2 * kv_dim] or null
  QkNormMode qk_norm = QkNormMode::kNone;
  const float* q_norm = nullptr;  // [head_dim] (per head) or [q_dim] (full)
  const float* k_norm = nullptr;  // [head_dim] or [kv_dim]
  float eps = 1e-6f;
  float clip = 0.0f;                   // > 0: clamp q, k, v to [-clip, clip]
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [head_dim / 2]
  float* q_out = nullptr;              // [num_tokens, q_dim]
  void* k_cache = nullptr;             // [num_blocks, block_size, num_kv_heads, head_dim]
  void* v_cache = nullptr;
  DType kv_dtype = DType::kBF16;
  const int32_t* slot_mapping = nullptr;  // [num_tokens]; < 0 skips the cache write
  int32_t num_tokens = 0;
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};
// One warp per (token, head), the same arithmetic at every batch size (and in decode attention's
// folded prologue); AURORA_LEGACY_PROLOGUE=1: the earlier kernels (a block per head up to 8 tokens,
// a block per token above: their q/k norm sums differ, so a row's bits depended on the batch).
void launch_qkv_prologue(const QkvPrologueParams& p, cudaStream_t stream);
bool legacy_prologue();

}  // namespace aurora::kernels::cuda
