// cuBLASLt runner for prefill-sized matrix products: y[m, n] (+)= x[m, k] W[n, k]^T with bf16 x and
// W (row-major, as checkpoints store nn.Linear), float32 y, float32 accumulation. Algorithms are
// chosen once per shape by cuBLASLt's heuristic and cached. The caller owns the workspace.
// Thread safety: one runner per stream/thread; gemm() never allocates or synchronises.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "aurora/kernels/cuda/dtype.hpp"

namespace aurora::kernels::cuda {

struct GemmParams {
  const bf16* x = nullptr;
  int64_t ldx = 0;  // 0 = k
  const bf16* w = nullptr;
  int64_t ldw = 0;  // 0 = k
  float* y = nullptr;
  int64_t ldy = 0;  // 0 = n
  int32_t m = 0;
  int32_t n = 0;
  int32_t k = 0;
  bool accumulate = false;
};

class CublasLtRunner {
 public:
  CublasLtRunner(void* workspace, size_t workspace_bytes);
  ~CublasLtRunner();
  CublasLtRunner(const CublasLtRunner&) = delete;
  CublasLtRunner& operator=(const CublasLtRunner&) = delete;

  void gemm(const GemmParams& p, cudaStream_t stream);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aurora::kernels::cuda
