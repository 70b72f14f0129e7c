// Thread-block-cluster kernels, host side (shared by the cluster attention, the clustered tensor-core
// decode attention and the cluster router): whether one can run on the current device, and its
// launch.
// Contract: cluster_runnable() answers once per (kernel, device, cluster size, dynamic shared
// memory) and remembers the answer, so the first call must come before any graph capture (a
// graph's warm-up step launches first). It leaves no CUDA error behind.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "aurora/kernels/cuda/cuda_check.hpp"

namespace aurora::kernels::cuda::detail {

// Whether `kernel` runs as clusters of `cl` blocks of `threads` threads with `smem` bytes of dynamic
// shared memory each, with at least one cluster resident at a time. On the way it raises the
// kernel's dynamic shared-memory limit to the device's opt-in limit less the kernel's static shared
// memory (asking for the whole opt-in limit fails: H200, 2026-11-28 19:43 UTC), and allows clusters
// over 8 blocks when `cl` > 8 or `non_portable`.
bool cluster_runnable(const void* kernel, int cl, int threads, size_t smem, bool non_portable);

// A launch configuration over `grid` as clusters of `cl` blocks along x, with programmatic dependent
// launch when `pdl`; `attr` holds its attributes.
inline cudaLaunchConfig_t cluster_config(dim3 grid, int cl, int threads, size_t smem, cudaStream_t stream, bool pdl,
                                         cudaLaunchAttribute (&attr)[2]) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(static_cast<unsigned>(threads));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(cl);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  return cfg;
}

// Launches `kernel` over `grid` as clusters of `cl` blocks along x, with programmatic dependent
// launch when `pdl`. A device that refuses the two together sets `pdl_refused` (one flag per call
// site) and gets a plain launch, now and from then on.
template <typename... KArgs, typename... Args>
void launch_clusters(bool& pdl_refused, bool pdl, void (*kernel)(KArgs...), dim3 grid, int cl, int threads, size_t smem,
                     cudaStream_t stream, Args... args) {
  auto launch = [&](bool with_pdl) {
    cudaLaunchAttribute attr[2];
    const cudaLaunchConfig_t cfg = cluster_config(grid, cl, threads, smem, stream, with_pdl, attr);
    return cudaLaunchKernelEx(&cfg, kernel, args...);
  };
  pdl = pdl && !pdl_refused;
  cudaError_t err = launch(pdl);
  if (err != cudaSuccess && pdl) {
    (void)cudaGetLastError();
    pdl_refused = true;
    err = launch(false);
  }
  AURORA_CUDA_CHECK(err);
}

}  // namespace aurora::kernels::cuda::detail
