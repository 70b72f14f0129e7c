// Token sampling on the GPU: greedy argmax, or temperature + exact top-k + top-p + inverse CDF.
#include "aurora/kernels/cuda/sampling.hpp"

#include <cub/block/block_scan.cuh>

#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kThreads = 1024;
using Scan = cub::BlockScan<float, kThreads>;

// Monotone map of a float onto uint32: larger float, larger key.
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct Shared {
  struct {
    typename Scan::TempStorage scan;
  } cub;
  uint32_t hist[256];
  float scratch[33];
  uint32_t prefix;
  int32_t remaining;
  int32_t found;
  float found_mass;
  float best_value[32];
  int32_t best_id[32];
};

__device__ int32_t argmax_row(const float* logits, int32_t vocab, Shared& sh) {
  float best = -INFINITY;
  int32_t best_id = 0x7fffffff;
#pragma unroll 8
  for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = logits[i];
    if (v > best || best_id == 0x7fffffff) {  // strided ids ascend: ties keep the lower id
      best = v;
      best_id = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t oid = __shfl_xor_sync(0xffffffffu, best_id, o);
    if (ov > best || (ov == best && oid < best_id)) {
      best = ov;
      best_id = oid;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sh.best_value[warp] = best;
    sh.best_id[warp] = best_id;
  }
  __syncthreads();
  if (warp == 0) {
    best = sh.best_value[lane];
    best_id = sh.best_id[lane];
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t oid = __shfl_xor_sync(0xffffffffu, best_id, o);
      if (ov > best || (ov == best && oid < best_id)) {
        best = ov;
        best_id = oid;
      }
    }
    if (lane == 0) sh.best_id[0] = best_id;
  }
  __syncthreads();
  return sh.best_id[0];
}

// The first id (in id order) where the running sum of mass(i) over ids with pred(i) exceeds `limit`
// (strictly, or reaches it when `reach`); returns -1 when it never does. Also leaves the running
// sum at that id in sh.found_mass.
template <class Mass>
__device__ int32_t first_crossing(int32_t vocab, Mass mass, float limit, bool reach, Shared& sh) {
  float running = 0.0f;
  __syncthreads();  // every thread has read the previous call's result
  if (threadIdx.x == 0) sh.found = 0x7fffffff;
  __syncthreads();
  for (int32_t base = 0; base < vocab; base += kThreads) {
    const int32_t i = base + threadIdx.x;
    const float m = i < vocab ? mass(i) : 0.0f;
    float inclusive, chunk_total;
    Scan(sh.cub.scan).InclusiveSum(m, inclusive, chunk_total);
    const float cum = running + inclusive;
    if (i < vocab && m > 0.0f && (reach ? cum >= limit : cum > limit)) atomicMin(&sh.found, i);
    __syncthreads();
    const int32_t found = sh.found;
    if (found != 0x7fffffff) {
      if (i == found) sh.found_mass = cum;
      __syncthreads();
      return found;
    }
    running += chunk_total;
  }
  return -1;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams p, int64_t stride) {
  __shared__ Shared sh;
  detail::pdl_wait();
  const int32_t r = blockIdx.x;
  const int32_t vocab = p.vocab_size;
  const float* logits = p.logits + r * stride;
  const SamplingRow row = p.rows[r];
  if (row.temperature <= 0.0f) {
    const int32_t id = argmax_row(logits, vocab, sh);
    if (threadIdx.x == 0) p.out_tokens[r] = id;
    return;
  }
  const float inv_t = 1.0f / row.temperature;
  auto value = [&](int32_t i) { return logits[i] * inv_t; };
  const bool use_top_k = row.top_k > 0 && row.top_k < vocab;
  const bool use_top_p = row.top_p < 1.0f;

  // 1. Exact top-k: the k-th largest key by radix select; ties at the threshold go to lower ids.
  uint32_t k_key = 0;
  int32_t k_cut = 0x7fffffff;  // among keys equal to k_key, ids <= k_cut are kept
  if (use_top_k) {
    if (threadIdx.x == 0) {
      sh.prefix = 0;
      sh.remaining = row.top_k;
    }
    uint32_t mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int b = threadIdx.x; b < 256; b += kThreads) sh.hist[b] = 0;
      __syncthreads();
      const uint32_t prefix = sh.prefix;
      for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
        const uint32_t key = order_key(value(i));
        if ((key & mask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        int32_t above = 0;
        for (int d = 255; d >= 0; --d) {
          const int32_t c = static_cast<int32_t>(sh.hist[d]);
          if (above + c >= sh.remaining) {
            sh.prefix = prefix | (static_cast<uint32_t>(d) << shift);
            sh.remaining -= above;
            break;
          }
          above += c;
        }
      }
      __syncthreads();
      mask |= 255u << shift;
    }
    k_key = sh.prefix;
    const int32_t need_equal = sh.remaining;
    // hist of the last pass counted exactly the keys equal to k_key in its bin.
    const int32_t equal = static_cast<int32_t>(sh.hist[k_key & 255u]);
    if (equal > need_equal) {
      const int32_t cut = first_crossing(
          vocab, [&](int32_t i) { return order_key(value(i)) == k_key ? 1.0f : 0.0f; }, static_cast<float>(need_equal),
          true, sh);
      k_cut = cut;
    }
  }
  auto kept_k = [&](int32_t i, uint32_t key) { return key > k_key || (key == k_key && i <= k_cut); };

  // 2. Softmax numerators over the kept set.
  float local_max = -INFINITY;
  for (int32_t i = threadIdx.x; i < vocab; i += kThreads) local_max = fmaxf(local_max, value(i));
  const float max_value = detail::block_max(local_max, sh.scratch);
  auto mass_k = [&](int32_t i) {
    const float v = value(i);
    return kept_k(i, order_key(v)) ? expf(v - max_value) : 0.0f;
  };
  float local_sum = 0.0f;
  for (int32_t i = threadIdx.x; i < vocab; i += kThreads) local_sum += mass_k(i);
  float total = detail::block_sum(local_sum, sh.scratch);

  // 3. Top-p: the largest key kappa whose mass at or above reaches top_p * total, ties by id.
  uint32_t p_key = 0;
  int32_t p_cut = 0x7fffffff;
  if (use_top_p) {
    const float target = row.top_p * total;
    uint32_t tau = 0;
    for (int bit = 31; bit >= 0; --bit) {
      const uint32_t cand = tau | (1u << bit);
      float s = 0.0f;
      for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
        const float v = value(i);
        const uint32_t key = order_key(v);
        if (key >= cand && kept_k(i, key)) s += expf(v - max_value);
      }
      if (detail::block_sum(s, sh.scratch) >= target) tau = cand;
    }
    p_key = tau;
    float s = 0.0f;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float v = value(i);
      const uint32_t key = order_key(v);
      if (key > p_key && kept_k(i, key)) s += expf(v - max_value);
    }
    const float mass_above = detail::block_sum(s, sh.scratch);
    const int32_t cut = first_crossing(
        vocab,
        [&](int32_t i) {
          const float v = value(i);
          const uint32_t key = order_key(v);
          return key == p_key && kept_k(i, key) ? expf(v - max_value) : 0.0f;
        },
        target - mass_above, true, sh);
    if (cut >= 0) p_cut = cut;
  }
  auto mass = [&](int32_t i) {
    const float v = value(i);
    const uint32_t key = order_key(v);
    const bool kept = kept_k(i, key) && (key > p_key || (key == p_key && i <= p_cut));
    return kept ? expf(v - max_value) : 0.0f;
  };
  if (use_top_p) {
    float s = 0.0f;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) s += mass(i);
    total = detail::block_sum(s, sh.scratch);
  }

  // 4. Invert the CDF in id order.
  int32_t token = first_crossing(vocab, mass, row.uniform * total, false, sh);
  if (token < 0) {  // rounding: the uniform sits at the very top; take the last kept id
    int32_t last = -1;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      if (mass(i) > 0.0f) last = max(last, i);
    }
    token = static_cast<int32_t>(detail::block_max(static_cast<float>(last), sh.scratch));
  }
  if (threadIdx.x == 0) p.out_tokens[r] = token;
}

}  // namespace

void launch_sample(const SampleParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return;
  AURORA_KERNEL_CHECK(p.vocab_size > 0 && p.vocab_size < (1 << 24), "vocab " << p.vocab_size);
  launch_pdl(sample_kernel, dim3(p.num_rows), dim3(kThreads), 0, stream, p,
             p.logits_stride ? p.logits_stride : int64_t{p.vocab_size});
}

}  // namespace aurora::kernels::cuda
