#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/device.hpp"
#include "device_utils.cuh"

namespace aurora::kernels {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return count;
}

}  // namespace aurora::kernels

namespace aurora::kernels::cuda {

bool env_is(const char* name, char value) {
  const char* v = std::getenv(name);
  return v && v[0] == value;
}

int pdl_mode() {
  static const int mode = env_is("AURORA_SAFE_KERNELS", '1') ? 0
                          : env_is("AURORA_PDL", '0')        ? 0
                          : env_is("AURORA_PDL", '1')        ? 1
                          : env_is("AURORA_PDL", '3')        ? 3
                                                             : 2;
  return mode;
}

namespace {
std::atomic<int> g_early_override{-1};
}  // namespace

int early_launches() {
  const int over = g_early_override.load(std::memory_order_relaxed);
  if (over >= 0) return over;
  static const int bits = [] {
    const int mode = pdl_mode();
    if (mode == 0 || mode == 3) return 0;
    const char* v = std::getenv("AURORA_EARLY");
    return v ? std::atoi(v) & kEarlyAll : kEarlyAll;
  }();
  return bits;
}
void set_early_launches(int bits) { g_early_override.store(bits & kEarlyAll, std::memory_order_relaxed); }
void reset_early_launches() { g_early_override.store(-1, std::memory_order_relaxed); }

int gemv_warps() {
  static const int warps = env_is("AURORA_GEMV_WARPS", '8') ? 8 : 4;
  return warps;
}

bool legacy_attention() {
  static const bool legacy = env_is("AURORA_LEGACY_ATTENTION", '1') || env_is("AURORA_SAFE_KERNELS", '1');
  return legacy;
}

void ensure_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  int device = 0;
  AURORA_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, size_t> configured;
  std::lock_guard lock(mu);
  size_t& have = configured[{device, kernel}];
  if (bytes <= have) return;
  AURORA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  have = bytes;
}

int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 132;
    }
    return n;
  }();
  return count;
}

}  // namespace aurora::kernels::cuda
