// Whether a thread-block-cluster kernel can run on the current device (host side, shared by the
// cluster attention and the cluster router).
// Contract: cluster_runnable() answers once per (kernel, device, cluster size, dynamic shared
// memory) and remembers the answer, so the first call must come before any graph capture (a
// graph's warm-up step launches first). It leaves no CUDA error behind.
#pragma once

#include <cstddef>

namespace aurora::kernels::cuda::detail {

// Whether `kernel` runs as clusters of `cl` blocks of `threads` threads with `smem` bytes of dynamic
// shared memory each, with at least one cluster resident at a time. On the way it raises the
// kernel's dynamic shared-memory limit to the device's opt-in limit less the kernel's static shared
// memory (asking for the whole opt-in limit fails: H200, 2026-11-28 19:43 UTC), and allows clusters
// over 8 blocks when `cl` > 8 or `non_portable`.
bool cluster_runnable(const void* kernel, int cl, int threads, size_t smem, bool non_portable);

}  // namespace aurora::kernels::cuda::detail
