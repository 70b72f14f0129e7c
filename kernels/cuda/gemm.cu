// cuBLASLt runner: bf16 x bf16 -> float32 with float32 accumulation, algorithms cached per shape.
#include "aurora/kernels/cuda/gemm.hpp"

#include <cublasLt.h>

#include <map>
#include <sstream>
#include <tuple>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

#define AURORA_CUBLAS_CHECK(call)                                                                              \
  do {                                                                                                         \
    const cublasStatus_t aurora_cublas_status_ = (call);                                                       \
    if (aurora_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                                      \
      ::aurora::kernels::cuda::throw_cuda_error(#call, cublasLtGetStatusName(aurora_cublas_status_), __FILE__, \
                                                __LINE__);                                                     \
    }                                                                                                          \
  } while (0)

namespace aurora::kernels::cuda {

struct CublasLtRunner::Impl {
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int32_t, int32_t, int32_t, int64_t, int64_t, int64_t, bool>;

  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<Key, Plan> plans;

  ~Impl() {
    for (auto& [key, plan] : plans) {
      cublasLtMatrixLayoutDestroy(plan.a);
      cublasLtMatrixLayoutDestroy(plan.b);
      cublasLtMatrixLayoutDestroy(plan.c);
      cublasLtMatmulDescDestroy(plan.desc);
    }
    if (handle) cublasLtDestroy(handle);
  }

  // Row-major y[m, n] = x[m, k] W[n, k]^T is column-major y^T[n, m] = (W^T)^T[n, k] x^T[k, m]:
  // A = W as a k x n column-major matrix, transposed; B = x as k x m column-major.
  const Plan& plan(const GemmParams& p, int64_t ldx, int64_t ldw, int64_t ldy) {
    const Key key{p.m, p.n, p.k, ldx, ldw, ldy, p.accumulate};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    Plan plan;
    AURORA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    AURORA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
    AURORA_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
    AURORA_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, static_cast<uint64_t>(p.k), static_cast<uint64_t>(p.n), ldw));
    AURORA_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, static_cast<uint64_t>(p.k), static_cast<uint64_t>(p.m), ldx));
    AURORA_CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&plan.c, CUDA_R_32F, static_cast<uint64_t>(p.n), static_cast<uint64_t>(p.m), ldy));
    cublasLtMatmulPreference_t pref = nullptr;
    AURORA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = workspace_bytes;
    AURORA_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const uint32_t align = 16;
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      AURORA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
    }
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &count);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || count == 0) {
      std::ostringstream msg;
      msg << "cuBLASLt has no algorithm for bf16 gemm m=" << p.m << " n=" << p.n << " k=" << p.k << " ("
          << cublasLtGetStatusName(st) << ")";
      throw CudaError(msg.str());
    }
    plan.algo = result.algo;
    return plans.emplace(key, plan).first->second;
  }
};

CublasLtRunner::CublasLtRunner(void* workspace, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  AURORA_CUBLAS_CHECK(cublasLtCreate(&impl_->handle));
  impl_->workspace = workspace;
  impl_->workspace_bytes = workspace_bytes;
}

CublasLtRunner::~CublasLtRunner() = default;

void CublasLtRunner::gemm(const GemmParams& p, cudaStream_t stream) {
  if (p.m == 0) return;
  AURORA_KERNEL_CHECK(p.n > 0 && p.k > 0, "gemm n " << p.n << ", k " << p.k);
  const int64_t ldx = p.ldx ? p.ldx : p.k, ldw = p.ldw ? p.ldw : p.k, ldy = p.ldy ? p.ldy : p.n;
  const Impl::Plan& plan = impl_->plan(p, ldx, ldw, ldy);
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  AURORA_CUBLAS_CHECK(cublasLtMatmul(impl_->handle, plan.desc, &alpha, p.w, plan.a, p.x, plan.b, &beta, p.y, plan.c,
                                     p.y, plan.c, &plan.algo, impl_->workspace, impl_->workspace_bytes, stream));
}

}  // namespace aurora::kernels::cuda
