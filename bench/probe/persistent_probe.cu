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
// Part two (latency_kernel) adds each layer's latency-bound work as timed waits (the measured
// prologue, attention arithmetic, routing and combine) and times the layer without and with the
// weights known a layer ahead (o_proj, the next qkv) staged in shared memory during those waits.
//
// Build and run (a standalone probe, not part of the CMake build):
//   nvcc -O3 -std=c++17 -arch=sm_90a -Ikernels/include -Ikernels/cuda
//     -o /tmp/persistent_probe bench/probe/persistent_probe.cu   (one command)
//   /tmp/persistent_probe [blocks per SM (2)] [threads per block (256)]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
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
namespace detail = aurora::kernels::cuda::detail;

constexpr int kMaxPhases = 16;
struct Step {
  int layers = 0;
  int phases = 0;
  int64_t bytes[kMaxPhases] = {};  // per layer; 0 = a barrier alone
  int64_t layer_stride = 0;        // bytes between consecutive layers' weights
};

// Weights stream as the GEMVs read them: 16-byte loads that bypass L1.
__device__ __forceinline__ uint4 ld_stream(const uint4* p) { return detail::ld_stream_u4(p); }

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

// Units [u, hi) of p with this thread's stride (from u = lo + threadIdx.x): 16-byte loads, 8 in flight.
__device__ __forceinline__ unsigned stream_range(const uint4* p, int64_t u, int64_t hi, unsigned acc) {
  for (; u + 7 * int64_t{blockDim.x} < hi; u += 8 * int64_t{blockDim.x}) {
    uint4 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = ld_stream(p + u + i * int64_t{blockDim.x});
#pragma unroll
    for (int i = 0; i < 8; ++i) acc ^= v[i].x + v[i].y + v[i].z + v[i].w;
  }
  for (; u < hi; u += blockDim.x) {
    const uint4 v = ld_stream(p + u);
    acc ^= v.x + v.y + v.z + v.w;
  }
  return acc;
}

// The rest of the share after its first round (primed into v0).
__device__ __forceinline__ unsigned finish(const Share& s, const uint4 (&v0)[8], unsigned acc) {
#pragma unroll
  for (int i = 0; i < 8; ++i) acc ^= v0[i].x + v0[i].y + v0[i].z + v0[i].w;
  return stream_range(s.p, s.lo + threadIdx.x + 8 * int64_t{blockDim.x}, s.hi, acc);
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

// Part two: a layer's latency-bound work as timed waits, and the weights known a layer ahead staged
// in shared memory while those waits run. Each phase streams its bytes (if any), then, with STAGE,
// starts copying the share of the phase `stage` names (in this layer, or + phases: the next layer's)
// into shared memory (cp.async, at most kStageBytes per block), waits wait_us (thread 0 on the global
// timer), and meets the grid; the staged phase reads its staged part from shared memory and streams
// the rest.
constexpr int kStageBytes = 200 * 1024;
struct LatencyPhase {
  int64_t bytes = 0;
  float wait_us = 0.0f;
  int stage = -1;
};
struct LatencyLayer {
  int layers = 0;
  int phases = 0;
  LatencyPhase ph[kMaxPhases];
  int64_t layer_stride = 0;
};

__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

template <bool STAGE>
__global__ void latency_kernel(const char* weights, LatencyLayer L, unsigned* sync, unsigned* sink) {
  extern __shared__ uint4 staged_buf[];
  const int total = L.layers * L.phases;
  auto share = [&](int g) {  // phase g % phases of layer g / phases
    const int ph = g % L.phases;
    const char* w = weights + int64_t{g / L.phases} * L.layer_stride;
    for (int q = 0; q < ph; ++q) w += L.ph[q].bytes;
    return share_of(w, L.ph[ph].bytes);
  };
  unsigned acc = 0;
  int staged_phase = -1;
  int64_t staged_units = 0;
  for (int g = 0; g < total; ++g) {
    const LatencyPhase& q = L.ph[g % L.phases];
    if (q.bytes > 0) {
      const Share sh = share(g);
      int64_t from = sh.lo;
      if (STAGE && staged_phase == g) {
        detail::cp_async_wait<0>();
        __syncthreads();
        for (int64_t u = threadIdx.x; u < staged_units; u += blockDim.x) {
          const uint4 v = staged_buf[u];
          acc ^= v.x + v.y + v.z + v.w;
        }
        __syncthreads();  // the buffer is free for the next staging
        from += staged_units;
        staged_phase = -1;
      }
      acc = stream_range(sh.p, from + threadIdx.x, sh.hi, acc);
    }
    const int target = g - g % L.phases + q.stage;
    if (STAGE && q.stage >= 0 && target < total && staged_phase < 0) {
      const Share t = share(target);
      staged_units = min(int64_t{kStageBytes / 16}, t.hi - t.lo);
      for (int64_t u = threadIdx.x; u < staged_units; u += blockDim.x) {
        detail::cp_async16(staged_buf + u, t.p + t.lo + u);
      }
      detail::cp_async_commit();
      staged_phase = target;
    }
    if (q.wait_us > 0.0f) {
      if (threadIdx.x == 0) {
        const unsigned long long until = global_ns() + static_cast<unsigned long long>(q.wait_us * 1e3f);
        while (global_ns() < until) {
        }
      }
      __syncthreads();
    }
    grid_barrier(sync, sync + 1, gridDim.x);
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
  std::vector<LatencyPhase> phases;  // per layer, in order: part one streams their bytes alone
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
  // One layer of each model at batch 1: qkv, the qkv prologue, attention (its K/V at a ~530-position
  // context), o_proj, the router (float32 weights), the experts' gate_up and down (the chosen
  // experts), the combine. Bytes as the benchmark's roofline counts them, plus K/V. Part one streams
  // the bytes alone. Part two adds the latency-bound work as waits (measured on the H200,
  // docs/cuda.md: the qkv prologue 2.5 us (OLMoE's full-width q/k norm 4.9), the attention's
  // arithmetic 4, the router's logits and top-k 4.8, the combine 2) and stages o_proj (during the
  // prologue and the attention) and the next layer's qkv (from the router's wait on).
  const int kO = 3, kNextQkv = 8;  // phase indices: o_proj, and the next layer's qkv (phases + 0)
  const std::vector<Model> models = {
      {"OLMoE-1B-7B",
       16,
       {{MB(25.2), 0, -1},
        {0, 4.9f, kO},
        {MB(4.3), 4.0f, -1},
        {MB(8.4), 0, -1},
        {MB(0.5), 4.8f, kNextQkv},
        {MB(67.1), 0, -1},
        {MB(33.6), 0, -1},
        {0, 2.0f, -1}}},
      {"Qwen3-30B-A3B",
       48,
       {{MB(21.0), 0, -1},
        {0, 2.5f, kO},
        {MB(1.1), 4.0f, -1},
        {MB(16.8), 0, -1},
        {MB(1.0), 4.8f, kNextQkv},
        {MB(50.3), 0, -1},
        {MB(25.2), 0, -1},
        {0, 2.0f, -1}}},
      {"Mixtral-8x7B",
       32,
       {{MB(50.3), 0, -1},
        {0, 1.8f, kO},
        {MB(2.2), 4.0f, -1},
        {MB(33.6), 0, -1},
        {MB(0.1), 4.8f, kNextQkv},
        {MB(469.8), 0, -1},
        {MB(234.9), 0, -1},
        {0, 2.0f, -1}}},
  };
  int64_t max_total = 0;
  for (const Model& m : models) {
    int64_t layer = 0;
    for (const LatencyPhase& q : m.phases) layer += q.bytes;
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
      s.bytes[i] = m.phases[static_cast<size_t>(i)].bytes;
      layer += s.bytes[i];
    }
    s.layer_stride = layer;
    const double ms = time_ms([&] { step_kernel<true><<<blocks, threads>>>(weights, s, sync, sink); }, 10);
    const double late = time_ms([&] { step_kernel<false><<<blocks, threads>>>(weights, s, sync, sink); }, 10);
    const double roof = static_cast<double>(layer * m.layers) / (bw * 1e9) * 1e3;
    std::printf("  %-16s %8d %12.3f %12.3f %9.2fx %14.2f %14.3f (%.2fx)\n", m.name, m.layers, ms, roof, ms / roof,
                ms * 1e3 / m.layers, late, late / roof);
  }
  // Part two, one block of 512 threads per multiprocessor with kStageBytes of shared memory, without
  // and with the staging.
  const int lthreads = 512;
  for (auto kernel : {latency_kernel<false>, latency_kernel<true>}) {
    CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kStageBytes));
  }
  int lfit = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&lfit, latency_kernel<true>, lthreads, kStageBytes));
  if (lfit < 1) {
    std::fprintf(stderr, "a block of %d threads with %d bytes of shared memory does not fit\n", lthreads, kStageBytes);
    return 1;
  }
  std::printf("  with latency waits, %d blocks of %d threads, up to %d KB staged per block:\n", sms, lthreads,
              kStageBytes / 1024);
  std::printf("  %-16s %12s %12s %12s %12s\n", "model", "roofline", "not staged", "staged", "per layer (us)");
  for (const Model& m : models) {
    LatencyLayer L;
    L.layers = m.layers;
    L.phases = static_cast<int>(m.phases.size());
    int64_t layer = 0;
    for (int i = 0; i < L.phases; ++i) {
      L.ph[i] = m.phases[static_cast<size_t>(i)];
      layer += L.ph[i].bytes;
    }
    L.layer_stride = layer;
    const double plain =
        time_ms([&] { latency_kernel<false><<<sms, lthreads, kStageBytes>>>(weights, L, sync, sink); }, 10);
    const double staged =
        time_ms([&] { latency_kernel<true><<<sms, lthreads, kStageBytes>>>(weights, L, sync, sink); }, 10);
    const double roof = static_cast<double>(layer * m.layers) / (bw * 1e9) * 1e3;
    std::printf("  %-16s %12.3f %7.3f (%.2fx) %7.3f (%.2fx) %9.2f\n", m.name, roof, plain, plain / roof, staged,
                staged / roof, staged * 1e3 / m.layers);
  }
  CHECK(cudaGetLastError());
  return 0;
}
