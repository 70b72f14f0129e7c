// What one persistent kernel per decode step could reach at batch 1 on this GPU: the bound the
// persistent per-layer kernel of docs/cuda.md (round 7, "Next") is aiming at.
//
// A step is the model's layers, each a sequence of phases (qkv, attention, o_proj, router, the
// experts' gate_up and down), separated by grid barriers. Every phase streams its bytes once, spread
// evenly over every resident block (16-byte loads that bypass L1, 8 in flight per thread); phases of
// latency-bound work (the qkv prologue, the combine) are barriers alone. The weights of consecutive
// layers lie in one buffer larger than L2, so nothing is read from cache. Each phase's first round of
// loads is issued before the barrier that ends the phase before it (weights do not depend on earlier
// phases), or, to compare, after it. Printed per model: the step's time, the roofline (its bytes,
// without the LM head, at the copy bandwidth measured here) and their ratio; also the cost of one
// grid barrier. No arithmetic, no routing, no real attention: a bound, not a design.
//
// Build and run (a standalone probe, not part of the CMake build):
//   nvcc -O3 -std=c++17 -arch=sm_90a -Ikernels/include -Ikernels/cuda -o /tmp/persistent_probe \
//     bench/probe/persistent_probe.cu
//   /tmp/persistent_probe [blocks per SM (2)] [threads per block (256)]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "device_utils.cuh"

#define CHECK(call)                                                                                       \
  do {                                                                                                    \
    const cudaError_t e_ = (call);                                                                        \
    if (e_ != cudaSuccess) {                                                                              \
      std::fprintf(stderr, "%s failed: %s (%s:%d)\n", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                                       \
    }                                                                                                     \
  } while (0)

namespace {

constexpr int kMaxPhases = 16;
struct Step {
  int layers = 0;
  int phases = 0;
  int64_t bytes[kMaxPhases] = {};  // per layer; 0 = a barrier alone
  int64_t layer_stride = 0;        // bytes between consecutive layers' weights
};

// Weights stream as the GEMVs read them: 16-byte loads that bypass L1.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) { return aurora::kernels::cuda::detail::ld_stream_u4(p); }

// All blocks meet: thread 0 of each adds one to count; the last resets it and advances the
// generation, the others spin until it moves.
__device__ __forceinline__ void grid_barrier(unsigned* count, unsigned* generation, unsigned blocks) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned gen = *reinterpret_cast<volatile unsigned*>(generation);
    __threadfence();
    if (atomicAdd(count, 1u) == blocks - 1) {
      *count = 0;
      __threadfence();
      atomicAdd(generation, 1u);
    } else {
      unsigned now;
      do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(now) : "l"(generation));
      } while (now == gen);
    }
  }
  __syncthreads();
}

// This block's share of a phase's bytes, as 16-byte units [lo, hi).
struct Share {
  const uint4* p = nullptr;
  int64_t lo = 0, hi = 0;
};
__device__ __forceinline__ Share share_of(const char* base, int64_t bytes) {
  const int64_t units = bytes / 16;
  return {reinterpret_cast<const uint4*>(base), units * blockIdx.x / gridDim.x, units * (blockIdx.x + 1) / gridDim.x};
}

// The share's first round of loads (8 per thread), into v; weights do not depend on earlier phases,
// so they may be issued before the barrier that ends the previous phase.
__device__ __forceinline__ void prime(const Share& s, uint4 (&v)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t u = s.lo + threadIdx.x + i * int64_t{blockDim.x};
    v[i] = u < s.hi ? ld_stream(s.p + u) : make_uint4(0, 0, 0, 0);
  }
}

// The rest of the share after its first round (primed into v0): 16-byte loads, 8 per thread in flight.
__device__ __forceinline__ unsigned finish(const Share& s, const uint4 (&v0)[8], unsigned acc) {
#pragma unroll
  for (int i = 0; i < 8; ++i) acc ^= v0[i].x + v0[i].y + v0[i].z + v0[i].w;
  int64_t u = s.lo + threadIdx.x + 8 * int64_t{blockDim.x};
  for (; u + 7 * int64_t{blockDim.x} < s.hi; u += 8 * int64_t{blockDim.x}) {
    uint4 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = ld_stream(s.p + u + i * int64_t{blockDim.x});
#pragma unroll
    for (int i = 0; i < 8; ++i) acc ^= v[i].x + v[i].y + v[i].z + v[i].w;
  }
  for (; u < s.hi; u += blockDim.x) {
    const uint4 v = ld_stream(s.p + u);
    acc ^= v.x + v.y + v.z + v.w;
  }
  return acc;
}

// EARLY: each phase's first round of loads is issued before the barrier that ends the phase before
// it (what a persistent kernel can do with weights); otherwise right after that barrier.
template <bool EARLY>
__global__ void step_kernel(const char* weights, Step s, unsigned* sync, unsigned* sink) {
  unsigned acc = 0;
  const int total = s.layers * s.phases;
  auto share = [&](int i) {  // phase i % phases of layer i / phases
    const int ph = i % s.phases;
    const char* w = weights + int64_t{i / s.phases} * s.layer_stride;
    for (int q = 0; q < ph; ++q) w += s.bytes[q];
    return share_of(w, s.bytes[ph]);
  };
  uint4 v[8];
  Share cur = share(0);
  prime(cur, v);
  for (int i = 0; i < total; ++i) {
    acc = finish(cur, v, acc);
    if (i + 1 < total) {
      cur = share(i + 1);
      if (EARLY) prime(cur, v);
    }
    grid_barrier(sync, sync + 1, gridDim.x);
    if (!EARLY && i + 1 < total) prime(cur, v);
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads live
}

__global__ void copy_kernel(const uint4* src, uint4* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = src[i];
  }
}

struct Model {
  const char* name;
  int layers;
  std::vector<int64_t> phases;  // per layer, in order
};

constexpr int64_t MB(double x) { return static_cast<int64_t>(x * 1e6) / 16 * 16; }

}  // namespace

int main(int argc, char** argv) {
  const int per_sm = argc > 1 ? std::atoi(argv[1]) : 2;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 256;
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int blocks = sms * per_sm;
  int fit = 0, fit_late = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, step_kernel<true>, threads, 0));
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit_late, step_kernel<false>, threads, 0));
  fit = std::min(fit, fit_late);
  if (fit < per_sm) {  // (the grid barrier needs every block resident)
    std::fprintf(stderr, "only %d blocks of %d threads fit a multiprocessor\n", fit, threads);
    return 1;
  }
  // One layer of each model at batch 1: qkv, the qkv prologue (barrier), attention (its K/V at a
  // ~530-position context), o_proj, the router (float32 weights), the experts' gate_up and down (the
  // chosen experts), the combine (barrier). Bytes as the benchmark's roofline counts them, plus K/V.
  const std::vector<Model> models = {
      {"OLMoE-1B-7B", 16, {MB(25.2), 0, MB(4.3), MB(8.4), MB(0.5), MB(67.1), MB(33.6), 0}},
      {"Qwen3-30B-A3B", 48, {MB(21.0), 0, MB(1.1), MB(16.8), MB(1.0), MB(50.3), MB(25.2), 0}},
      {"Mixtral-8x7B", 32, {MB(50.3), 0, MB(2.2), MB(33.6), MB(0.1), MB(469.8), MB(234.9), 0}},
  };
  int64_t max_layer = 0, max_total = 0;
  for (const Model& m : models) {
    int64_t layer = 0;
    for (int64_t b : m.phases) layer += b;
    max_layer = std::max(max_layer, layer);
    max_total = std::max(max_total, layer * m.layers);
  }
  char* weights = nullptr;
  CHECK(cudaMalloc(&weights, static_cast<size_t>(max_total)));
  CHECK(cudaMemset(weights, 1, static_cast<size_t>(max_total)));
  unsigned *sync = nullptr, *sink = nullptr;
  CHECK(cudaMalloc(&sync, 2 * sizeof(unsigned)));
  CHECK(cudaMemset(sync, 0, 2 * sizeof(unsigned)));
  CHECK(cudaMalloc(&sink, sizeof(unsigned) * static_cast<size_t>(blocks)));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  auto time_ms = [&](auto&& launch, int reps) {
    launch();
    CHECK(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int r = 0; r < reps; ++r) {
      CHECK(cudaEventRecord(e0));
      launch();
      CHECK(cudaEventRecord(e1));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return static_cast<double>(t[t.size() / 2]);
  };
  // The copy bandwidth (read + write of 2 GB), as the benchmark's roofline uses.
  const int64_t half = int64_t{1} << 30;
  const double copy_ms = time_ms(
      [&] {
        copy_kernel<<<sms * 8, 512>>>(reinterpret_cast<const uint4*>(weights), reinterpret_cast<uint4*>(weights + half),
                                      half / 16);
      },
      10);
  const double bw = 2.0 * static_cast<double>(half) / (copy_ms * 1e-3) / 1e9;  // GB/s
  std::printf("persistent-kernel probe: %d SMs, %d blocks of %d threads; copy bandwidth %.0f GB/s\n", sms, blocks,
              threads, bw);
  // A grid barrier alone: 2000 of them in one launch.
  Step bar;
  bar.layers = 2000;
  bar.phases = 1;
  const double bar_ms = time_ms([&] { step_kernel<false><<<blocks, threads>>>(weights, bar, sync, sink); }, 5);
  std::printf("  grid barrier: %.2f us each\n", bar_ms * 1e3 / 2000);
  std::printf("  %-16s %8s %12s %12s %10s %14s %22s\n", "model", "layers", "step (ms)", "roofline", "ratio",
              "per layer (us)", "first loads after barrier");
  for (const Model& m : models) {
    Step s;
    s.layers = m.layers;
    s.phases = static_cast<int>(m.phases.size());
    int64_t layer = 0;
    for (int i = 0; i < s.phases; ++i) {
      s.bytes[i] = m.phases[static_cast<size_t>(i)];
      layer += s.bytes[i];
    }
    s.layer_stride = layer;
    const double ms = time_ms([&] { step_kernel<true><<<blocks, threads>>>(weights, s, sync, sink); }, 10);
    const double late = time_ms([&] { step_kernel<false><<<blocks, threads>>>(weights, s, sync, sink); }, 10);
    const double roof = static_cast<double>(layer * m.layers) / (bw * 1e9) * 1e3;
    std::printf("  %-16s %8d %12.3f %12.3f %9.2fx %14.2f %14.3f (%.2fx)\n", m.name, m.layers, ms, roof, ms / roof,
                ms * 1e3 / m.layers, late, late / roof);
  }
  CHECK(cudaGetLastError());
  return 0;
}
