// The backend registry: which backends this build has and how a device string picks one. The only
// runtime file (with the device-runner factory below) that knows whether CUDA is built.
#include <cstdlib>
#include <string>

#include "aurora/kernels/device.hpp"
#include "aurora/runtime/backend.hpp"
#include "executor/device_runner.hpp"

#if AURORA_HAS_CUDA
#include "cuda_backend.hpp"
#endif

namespace aurora::runtime {

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  const int gpus = kernels::cuda_device_count();
  if (device == "auto" || device.empty()) {
#if AURORA_HAS_CUDA
    if (gpus > 0) return cuda::make_cuda_backend(0);
#endif
    return make_cpu_backend();
  }
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    const std::string index = device == "cuda" ? "0" : device.substr(5);
    char* end = nullptr;
    const long n = std::strtol(index.c_str(), &end, 10);
    if (index.empty() || *end != '\0' || n < 0) {
      return Error::invalid("device", "must be \"cpu\", \"auto\" or \"cuda:N\", got \"" + device + "\"");
    }
#if AURORA_HAS_CUDA
    if (n >= gpus) {
      return Error::make(ErrorCode::kUnavailable,
                         "device \"" + device + "\": this machine has " + std::to_string(gpus) + " CUDA device(s)");
    }
    return cuda::make_cuda_backend(static_cast<int>(n));
#else
    (void)gpus;
    return Error::make(ErrorCode::kUnsupported,
                       "device \"" + device + "\": this build has no CUDA backend (configure with AURORA_CUDA=ON)");
#endif
  }
  return Error::invalid("device", "must be \"cpu\", \"auto\" or \"cuda:N\", got \"" + device + "\"");
}

Result<std::unique_ptr<DeviceRunner>> make_device_runner(const Model& model, const DeviceRunnerOptions& options,
                                                         Backend& backend) {
#if AURORA_HAS_CUDA
  const int device = cuda::cuda_device_of(backend);
  if (device >= 0) return cuda::make_cuda_device_runner(model, options, device);
#else
  (void)model;
  (void)options;
#endif
  return Error::make(ErrorCode::kUnsupported, "backend " + backend.name() + " has no device runner");
}

Result<DeviceGroup> make_expert_parallel_runners(const std::vector<const Model*>& models,
                                                 const DeviceRunnerOptions& options, int32_t num_ranks,
                                                 Backend& backend) {
#if AURORA_HAS_CUDA
  const int device = cuda::cuda_device_of(backend);
  if (device >= 0) return cuda::make_cuda_expert_parallel_runners(models, options, num_ranks, device);
#else
  (void)models;
  (void)options;
  (void)num_ranks;
#endif
  return Error::make(ErrorCode::kUnsupported, "backend " + backend.name() + " has no expert-parallel device runner");
}

}  // namespace aurora::runtime
