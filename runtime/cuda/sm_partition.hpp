// SmPartition: a compute stream limited to a subset of a GPU's multiprocessors, through a green
// context (CUDA driver API, 12.4+). Kernels launched on stream() run on at most num_sms() SMs, so
// a full-size GPU behaves like a smaller one: the compute half of the heterogeneity emulation
// (docs/multi_gpu.md; the bandwidth half is NcclOptions::max_ctas). Memory is the device's, shared
// with the primary context. Errors (kUnsupported) when the driver has no green contexts.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "aurora/config/error.hpp"

namespace aurora::runtime::cuda {

class SmPartition {
 public:
  static Result<std::unique_ptr<SmPartition>> create(int device, int32_t min_sms);
  ~SmPartition();
  SmPartition(const SmPartition&) = delete;
  SmPartition& operator=(const SmPartition&) = delete;

  cudaStream_t stream() const { return stream_; }
  int32_t num_sms() const { return num_sms_; }  // granted (rounded up to the hardware's group size)
  int32_t device_sms() const { return device_sms_; }

 private:
  SmPartition() = default;
  void* green_ctx_ = nullptr;  // CUgreenCtx
  cudaStream_t stream_ = nullptr;
  int32_t num_sms_ = 0;
  int32_t device_sms_ = 0;
};

}  // namespace aurora::runtime::cuda
