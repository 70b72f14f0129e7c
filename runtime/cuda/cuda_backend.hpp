// The CUDA backend's entry points for the backend registry (runtime/src/backend/registry.cpp), the
// only place that includes this header.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "aurora/config/error.hpp"
#include "aurora/runtime/backend.hpp"
#include "executor/device_runner.hpp"

namespace aurora::runtime::cuda {

// The Backend of GPU `device`: device memory, CUDA streams and events, and the float32 ops on the
// GPU (each the twin of its kernels::cpu op; see kernels/include/aurora/kernels/cuda).
std::unique_ptr<Backend> make_cuda_backend(int device);
// The GPU of a backend made by make_cuda_backend, or -1.
int cuda_device_of(const Backend& backend);
// The CUDA stream behind a stream of a CUDA backend (AURORA_CHECK otherwise).
cudaStream_t cuda_stream_of(Stream& stream);

Result<std::unique_ptr<DeviceRunner>> make_cuda_device_runner(const Model& model, const DeviceRunnerOptions& options,
                                                              int device);
// Expert parallelism over GPUs first_device .. first_device + num_ranks - 1 (one or two models).
Result<DeviceGroup> make_cuda_expert_parallel_runners(const std::vector<const Model*>& models,
                                                      const DeviceRunnerOptions& options, int32_t num_ranks,
                                                      int first_device);

}  // namespace aurora::runtime::cuda
