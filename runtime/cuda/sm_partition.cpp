#include "sm_partition.hpp"

#include <cuda.h>

#include <string>

namespace aurora::runtime::cuda {

namespace {

// Driver entry points through the runtime (no link against libcuda: the build machine has none).
template <class Fn>
bool driver_fn(const char* symbol, Fn& out) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult status{};
  if (cudaGetDriverEntryPointByVersion(symbol, &fn, CUDART_VERSION, cudaEnableDefault, &status) != cudaSuccess ||
      status != cudaDriverEntryPointSuccess || !fn) {
    return false;
  }
  out = reinterpret_cast<Fn>(fn);
  return true;
}

Error driver_error(const char* call, CUresult r) {
  return Error::make(ErrorCode::kUnsupported, std::string("green context: ") + call + " failed with CUresult " +
                                                  std::to_string(static_cast<int>(r)));
}

#define AURORA_DRIVER_FN(var, name)                                                                        \
  decltype(&name) var = nullptr;                                                                           \
  if (!driver_fn(#name, var)) {                                                                            \
    return Error::make(ErrorCode::kUnsupported, std::string("green context: the driver has no ") + #name); \
  }

}  // namespace

Result<std::unique_ptr<SmPartition>> SmPartition::create(int device, int32_t min_sms) {
  if (min_sms < 1) return Error::invalid("min_sms", "must be >= 1, got " + std::to_string(min_sms));
  if (cudaSetDevice(device) != cudaSuccess || cudaFree(nullptr) != cudaSuccess) {
    return Error::make(ErrorCode::kUnavailable, "cuda:" + std::to_string(device) + " is not available");
  }
  AURORA_DRIVER_FN(device_get, cuDeviceGet);
  AURORA_DRIVER_FN(get_resource, cuDeviceGetDevResource);
  AURORA_DRIVER_FN(split, cuDevSmResourceSplitByCount);
  AURORA_DRIVER_FN(make_desc, cuDevResourceGenerateDesc);
  AURORA_DRIVER_FN(ctx_create, cuGreenCtxCreate);
  AURORA_DRIVER_FN(stream_create, cuGreenCtxStreamCreate);
  CUdevice dev;
  if (CUresult r = device_get(&dev, device); r != CUDA_SUCCESS) return driver_error("cuDeviceGet", r);
  CUdevResource all{};
  if (CUresult r = get_resource(dev, &all, CU_DEV_RESOURCE_TYPE_SM); r != CUDA_SUCCESS) {
    return driver_error("cuDeviceGetDevResource", r);
  }
  CUdevResource part{}, rest{};
  unsigned int groups = 1;
  if (CUresult r = split(&part, &groups, &all, &rest, 0, static_cast<unsigned>(min_sms));
      r != CUDA_SUCCESS || groups < 1) {
    return driver_error("cuDevSmResourceSplitByCount", r);
  }
  CUdevResourceDesc desc{};
  if (CUresult r = make_desc(&desc, &part, 1); r != CUDA_SUCCESS) return driver_error("cuDevResourceGenerateDesc", r);
  std::unique_ptr<SmPartition> p(new SmPartition());
  CUgreenCtx ctx = nullptr;
  if (CUresult r = ctx_create(&ctx, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM); r != CUDA_SUCCESS) {
    return driver_error("cuGreenCtxCreate", r);
  }
  p->green_ctx_ = ctx;
  CUstream stream = nullptr;
  if (CUresult r = stream_create(&stream, ctx, CU_STREAM_NON_BLOCKING, 0); r != CUDA_SUCCESS) {
    return driver_error("cuGreenCtxStreamCreate", r);
  }
  p->stream_ = reinterpret_cast<cudaStream_t>(stream);
  p->num_sms_ = static_cast<int32_t>(part.sm.smCount);
  p->device_sms_ = static_cast<int32_t>(all.sm.smCount);
  return p;
}

SmPartition::~SmPartition() {
  if (stream_) cudaStreamDestroy(stream_);
  if (green_ctx_) {
    decltype(&cuGreenCtxDestroy) destroy = nullptr;
    if (driver_fn("cuGreenCtxDestroy", destroy)) destroy(static_cast<CUgreenCtx>(green_ctx_));
  }
}

}  // namespace aurora::runtime::cuda
