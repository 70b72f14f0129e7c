// CUDA error handling for kernels/ and runtime/cuda: every runtime/driver/cuBLASLt call goes
// through AURORA_CUDA_CHECK, which throws CudaError naming the call, the error code and file:line
// (a device failure is an exception, never an abort). Only included where CUDA is built.
#pragma once

#include <cuda_runtime.h>

#include <sstream>
#include <stdexcept>
#include <string>

namespace aurora::kernels::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_cuda_error(const char* call, const char* code, const char* file, int line) {
  std::ostringstream msg;
  msg << "CUDA call " << call << " failed: " << code << " (" << file << ':' << line << ')';
  throw CudaError(msg.str());
}

}  // namespace aurora::kernels::cuda

#define AURORA_CUDA_CHECK(call)                                                                                    \
  do {                                                                                                             \
    const cudaError_t aurora_cuda_status_ = (call);                                                                \
    if (aurora_cuda_status_ != cudaSuccess) {                                                                      \
      ::aurora::kernels::cuda::throw_cuda_error(#call, cudaGetErrorName(aurora_cuda_status_), __FILE__, __LINE__); \
    }                                                                                                              \
  } while (0)

// After a kernel launch: reports bad launch configurations at once (asynchronous faults surface
// at the next synchronising call, also through AURORA_CUDA_CHECK).
#define AURORA_CUDA_LAUNCH_CHECK() AURORA_CUDA_CHECK(cudaGetLastError())
