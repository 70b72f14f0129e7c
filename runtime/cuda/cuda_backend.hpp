// The CUDA backend's entry points for the backend registry (runtime/src/backend/registry.cpp), the
// only place that includes this header.
#pragma once

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

Result<std::unique_ptr<DeviceRunner>> make_cuda_device_runner(const Model& model, const DeviceRunnerOptions& options,
                                                              int device);

}  // namespace aurora::runtime::cuda
