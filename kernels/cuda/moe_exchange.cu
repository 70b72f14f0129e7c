// Regrouping of routed items by placement key for the expert-parallel dispatch.
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/cuda/moe_exchange.hpp"

namespace aurora::kernels::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) regroup_by_key_kernel(RegroupByKeyParams p) {
  __shared__ int32_t key_off[kMaxRoutedExperts + 1];
  if (threadIdx.x == 0) {
    // Serial scan: at most 1024 experts, once per layer; cheaper than a block scan's barriers.
    int32_t acc = 0;
    key_off[0] = 0;
    for (int32_t k = 0; k < p.num_experts; ++k) {
      const int32_t e = p.expert_of_key[k];
      acc += p.expert_offsets[e + 1] - p.expert_offsets[e];
      key_off[k + 1] = acc;
    }
  }
  __syncthreads();
  for (int32_t k = threadIdx.x; k <= p.num_experts; k += blockDim.x) p.key_offsets[k] = key_off[k];
  for (int32_t i = threadIdx.x; i < p.num_items; i += blockDim.x) {
    // The expert of sorted position i: the last e with expert_offsets[e] <= i.
    int32_t lo = 0, hi = p.num_experts - 1;
    while (lo < hi) {
      const int32_t mid = (lo + hi + 1) >> 1;
      if (p.expert_offsets[mid] <= i) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const int32_t e = lo;
    const int32_t pos = key_off[p.key_of_expert[e]] + (i - p.expert_offsets[e]);
    const int32_t item = p.permuted_item[i];
    p.key_permuted_item[pos] = item;
    p.item_position[item] = pos;
  }
}

}  // namespace

void launch_regroup_by_key(const RegroupByKeyParams& p, cudaStream_t stream) {
  if (p.num_experts <= 0) return;
  regroup_by_key_kernel<<<1, kThreads, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

}  // namespace aurora::kernels::cuda
