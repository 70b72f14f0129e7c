#include "cluster_probe.cuh"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>

namespace aurora::kernels::cuda::detail {
namespace {

bool probe(const void* kernel, int device, int cl, int threads, size_t smem, bool non_portable) {
  int optin = 0;
  cudaFuncAttributes fa{};
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
      cudaFuncGetAttributes(&fa, kernel) != cudaSuccess || smem + fa.sharedSizeBytes > size_t(optin) ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           optin - static_cast<int>(fa.sharedSizeBytes)) != cudaSuccess ||
      ((cl > 8 || non_portable) &&
       cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess)) {
    return false;
  }
  cudaLaunchAttribute attr[2];
  const cudaLaunchConfig_t cfg =
      cluster_config(dim3(static_cast<unsigned>(cl)), cl, threads, smem, nullptr, false, attr);
  int n = 0;
  return cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) == cudaSuccess && n >= 1;
}

}  // namespace

bool cluster_runnable(const void* kernel, int cl, int threads, size_t smem, bool non_portable) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, int, size_t>, bool> known;
  std::lock_guard lock(mu);
  const auto key = std::make_tuple(kernel, device, cl, smem);
  if (auto it = known.find(key); it != known.end()) return it->second;
  const bool ok = probe(kernel, device, cl, threads, smem, non_portable);
  (void)cudaGetLastError();
  known[key] = ok;
  return ok;
}

}  // namespace aurora::kernels::cuda::detail
