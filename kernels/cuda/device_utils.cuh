// Device-side helpers shared by the kernels in this folder (reductions, loads, conversions).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/dtype.hpp"
#include "aurora/kernels/cuda/launch.hpp"

namespace aurora::kernels::cuda::detail {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 33 floats. Fixed reduction order: deterministic.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < warps ? scratch[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) scratch[32] = s;
  }
  __syncthreads();
  return scratch[32];
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < warps ? scratch[lane] : -INFINITY;
    s = warp_max(s);
    if (lane == 0) scratch[32] = s;
  }
  __syncthreads();
  return scratch[32];
}

__device__ __forceinline__ float load_as_float(const void* base, DType t, int64_t i) {
  if (t == DType::kF32) return static_cast<const float*>(base)[i];
  return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
}

__device__ __forceinline__ void store_from_float(void* base, DType t, int64_t i, float v) {
  if (t == DType::kF32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16(v);
  }
}

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

// 16-byte streaming load of weights: read once, do not keep in L1.
__device__ __forceinline__ uint4 ld_stream_u4(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl() may start while the
// previous kernel in the stream is still running (once every block of it has triggered or exited). It must call
// pdl_wait() before it reads or writes anything an earlier kernel touches (only constant inputs, such as weights, may
// be read before); pdl_launch_dependents() lets the next kernel's blocks start early. Both are no-ops in a kernel
// launched without the attribute.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" :::); }

// 16-byte asynchronous copy global -> shared (bypasses L1), and its group fences.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

inline int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

// Loads 8 consecutive elements (16-byte aligned) as float.
__device__ __forceinline__ void load8(const bf16* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x;
  out[1] = a.y;
  out[2] = a.z;
  out[3] = a.w;
  out[4] = b.x;
  out[5] = b.y;
  out[6] = b.z;
  out[7] = b.w;
}

}  // namespace aurora::kernels::cuda::detail

namespace aurora::kernels::cuda {

// When launch_pdl() sets the programmatic-serialization attribute (programmatic dependent launch):
//   AURORA_PDL=2 (default): on launches of small kernels only (at most one block per multiprocessor,
//     or a caller's hint: decode attention), whose early blocks take few slots;
//   AURORA_PDL=3: the same without the callers' hints (grid size only);
//   AURORA_PDL=1: on every launch; AURORA_PDL=0 (or AURORA_SAFE_KERNELS=1): never.
// Kernels trigger their dependents late (after their main loop, or at exit), so an early-launched
// kernel waits in slots the primary no longer needs. H200, 2026-11-28: mode 2 was the fastest at
// batch 1 (OLMoE 1.50 vs 1.58 ms off, 1.64 all); triggers at kernel start (the first version) made
// Mixtral slower (docs/cuda.md).
int pdl_mode();
// Whether environment variable `name` is set and starts with `value` (the kernels' switches).
bool env_is(const char* name, char value);
// Warps per decode GEMV block: 4, or 8 with AURORA_GEMV_WARPS=8 (measured slower; kept to compare).
int gemv_warps();
// Whether bf16-cache attention uses the first kernel (direct reads, 64-position partitions) instead
// of the shared-memory one: AURORA_LEGACY_ATTENTION=1. AURORA_SAFE_KERNELS=1 sets both switches.
bool legacy_attention();
// Multiprocessors of the current device (read once).
int sm_count();
// Allows `kernel` `bytes` of dynamic shared memory on the current device. The attribute is per
// device, so a process that drives several GPUs raises it once per (device, kernel); call before
// any capture of a launch that needs it (a graph's warm-up step does).
void ensure_dynamic_smem(const void* kernel, size_t bytes);

// Launches `kernel` with programmatic dependent launch allowed (see pdl_wait above) as pdl_mode()
// says; small_hint: the caller knows that few of the grid's blocks do work (mode 2 only).
template <typename... KArgs, typename... Args>
void launch_pdl_hinted(bool small_hint, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                       cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  const int mode = pdl_mode();
  const int64_t blocks = int64_t{grid.x} * grid.y * grid.z;
  const bool small = blocks <= sm_count() || (mode == 2 && small_hint);
  attr[0].val.programmaticStreamSerializationAllowed = mode == 1 || (mode >= 2 && small) ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  AURORA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  launch_pdl_hinted(false, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

}  // namespace aurora::kernels::cuda
