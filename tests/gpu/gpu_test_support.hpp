// Helpers for GPU tests: device arrays that start poisoned (NaN / -1 bytes), uploads, downloads,
// bf16 rounding on the host, seeded random data and error norms. Only built with CUDA.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/dtype.hpp"

namespace aurora::test {

using kernels::cuda::bf16;

inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}
inline float bf16_to_float(uint16_t b) {
  const uint32_t u = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return bf16_to_float(bf16_bits(f)); }
inline std::vector<float> rounded_bf16(std::vector<float> v) {
  for (auto& x : v) x = round_bf16(x);
  return v;
}
inline std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_bits(v[i]);
  return out;
}

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    AURORA_CUDA_CHECK(cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)));
    poison();
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(n_, o.n_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (ptr_) cudaFree(ptr_);
  }
  // 0xff bytes: NaN for float and bf16, -1 for integers.
  void poison() { AURORA_CUDA_CHECK(cudaMemset(ptr_, 0xff, std::max<size_t>(n_, 1) * sizeof(T))); }
  void zero() { AURORA_CUDA_CHECK(cudaMemset(ptr_, 0, std::max<size_t>(n_, 1) * sizeof(T))); }
  void upload(const std::vector<T>& host) {
    AURORA_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    AURORA_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    AURORA_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// bf16 data lives as uint16_t bits on the host.
inline DeviceArray<uint16_t> upload_bf16(const std::vector<float>& v) { return DeviceArray<uint16_t>(to_bf16_bits(v)); }
inline bf16* as_bf16(const DeviceArray<uint16_t>& a) { return reinterpret_cast<bf16*>(a.get()); }
inline std::vector<float> download_bf16(const DeviceArray<uint16_t>& a) {
  auto bits = a.download();
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_float(bits[i]);
  return out;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// max |got - want| / max |want|; infinity when got holds a NaN (an unwritten output).
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double worst = 0.0, scale = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) return std::numeric_limits<double>::infinity();
    if (std::isnan(want[i])) continue;
    worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return worst / scale;
}

// Per-dtype tolerances (relative to the largest reference magnitude).
constexpr double kTolF32 = 2e-5;        // float32 math, different summation order
constexpr double kTolBf16Out = 1.2e-2;  // one bf16 rounding of the output (2^-8 relative, plus margin)

inline void sync() { AURORA_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace aurora::test
