// MoE routing, permutation and combine on the GPU.
#include "aurora/kernels/cuda/moe.hpp"

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cstdlib>

#include "aurora/kernels/kernel_check.hpp"
#include "cluster_probe.cuh"
#include "device_utils.cuh"
#include "moe_combine.cuh"
#include "route_token.cuh"

namespace aurora::kernels::cuda {
namespace {
namespace cg = cooperative_groups;
using detail::route_token;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kExpertsPerThread = kMaxRoutedExperts / kThreads;
static_assert(kMaxRoutedExperts % kThreads == 0, "");

// Stable counting sort of items by key, by one block of kThreads threads.
struct PermuteOut {
  int32_t* offsets;        // [num_keys + 1]
  int32_t* permuted_item;  // [items]
  int32_t* item_position;  // [items]
  int32_t* active;         // [num_keys] or null
  int32_t* num_active;     // or null
  int64_t* counts_accum;   // [num_keys] or null
  int32_t counted_items;   // items below this index are added to counts_accum
};

// Stable placement of items [s0, s1) by one warp, 32 items at a time in item order: an item's
// place is its key's cursor plus the number of earlier lanes with the same key (__match_any_sync);
// the lowest such lane then advances the key's cursor (shared memory) for the group.
__device__ void place_items(const int32_t* keys, int32_t s0, int32_t s1, int32_t num_keys, int32_t* cursor,
                            const PermuteOut& out) {
  const int lane = threadIdx.x & 31;
  const unsigned below = (1u << lane) - 1u;
  constexpr int kBatch = 16;  // steps whose keys load together (one round trip per 512 items)
  for (int32_t b0 = s0; b0 < s1; b0 += 32 * kBatch) {
    int32_t key[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int32_t i = b0 + u * 32 + lane;
      key[u] = i < s1 ? __ldcg(keys + i) : -1;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int32_t i = b0 + u * 32 + lane;
      const int32_t k = key[u] < num_keys ? key[u] : -1;
      const unsigned same = __match_any_sync(0xffffffffu, k);
      if (k >= 0) {
        const int32_t pos = cursor[k] + __popc(same & below);
        out.permuted_item[pos] = i;
        out.item_position[i] = pos;
      }
      __syncwarp();
      if (k >= 0 && (same & below) == 0) cursor[k] += __popc(same);
      __syncwarp();
    }
  }
}

constexpr int32_t kHistKeys = 256;  // permute_block's parallel placement: keys per warp histogram

// counted: shared [kMaxRoutedExperts] scratch for the counts added to out.counts_accum (null: none).
// hist: shared [kWarps * kHistKeys] scratch for a parallel placement when num_keys <= kHistKeys
// (null: one warp places every item). No barrier may follow a call (warps leave at different times).
__device__ void permute_block(const int32_t* keys, int32_t items, int32_t num_keys, const PermuteOut& out,
                              int32_t* counts /* shared [kMaxRoutedExperts] */, int32_t* counted, int32_t* hist) {
  using Scan = cub::BlockScan<int32_t, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  for (int32_t e = threadIdx.x; e < num_keys; e += kThreads) {
    counts[e] = 0;
    if (counted) counted[e] = 0;
  }
  __syncthreads();
#pragma unroll 4
  for (int32_t i = threadIdx.x; i < items; i += kThreads) {
    const int32_t k = __ldcg(keys + i);  // other blocks of the launch may have written the keys
    if (k >= 0 && k < num_keys) {
      atomicAdd(&counts[k], 1);
      if (counted && i < out.counted_items) atomicAdd(&counted[k], 1);
    }
  }
  __syncthreads();
  if (counted) {  // one global atomic per expert, not per item
    for (int32_t e = threadIdx.x; e < num_keys; e += kThreads) {
      if (counted[e] > 0) {
        atomicAdd(reinterpret_cast<unsigned long long*>(out.counts_accum + e),
                  static_cast<unsigned long long>(counted[e]));
      }
    }
  }
  // Each thread owns kExpertsPerThread consecutive keys.
  int32_t local[kExpertsPerThread];
  int32_t sum = 0, nonzero = 0;
#pragma unroll
  for (int j = 0; j < kExpertsPerThread; ++j) {
    const int32_t e = threadIdx.x * kExpertsPerThread + j;
    local[j] = e < num_keys ? counts[e] : 0;
    sum += local[j];
    nonzero += local[j] > 0;
  }
  int32_t prefix = 0, active_prefix = 0, total_active = 0;
  Scan(scan_storage).ExclusiveSum(sum, prefix);
  __syncthreads();
  Scan(scan_storage).ExclusiveSum(nonzero, active_prefix, total_active);
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kExpertsPerThread; ++j) {
    const int32_t e = threadIdx.x * kExpertsPerThread + j;
    if (e < num_keys) {
      out.offsets[e] = prefix;
      if (out.active && local[j] > 0) out.active[active_prefix++] = e;
      counts[e] = prefix;  // becomes the placement cursor
      prefix += local[j];
    }
  }
  if (threadIdx.x == 0) {
    out.offsets[num_keys] = items;
    if (out.num_active) *out.num_active = total_active;
  }
  __syncthreads();
  if (hist && num_keys <= kHistKeys) {
    // Eight warps in parallel, each on its own contiguous segment of the items: per-warp key
    // histograms give each warp its cursors (the key's offset plus the key's items in earlier
    // segments), so the placement is the same stable order as one warp's.
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int32_t seg = (items + kWarps * 32 - 1) / (kWarps * 32) * 32;
    const int32_t s0 = min(items, warp * seg), s1 = min(items, s0 + seg);
    int32_t* own = hist + warp * kHistKeys;
    for (int32_t e = lane; e < num_keys; e += 32) own[e] = 0;
    __syncwarp();
#pragma unroll 4
    for (int32_t i = s0 + lane; i < s1; i += 32) {
      const int32_t k = __ldcg(keys + i);
      if (k >= 0 && k < num_keys) atomicAdd(&own[k], 1);
    }
    __syncthreads();
    for (int32_t e = threadIdx.x; e < num_keys; e += kThreads) {
      int32_t run = counts[e];
      for (int w = 0; w < kWarps; ++w) {
        const int32_t c = hist[w * kHistKeys + e];
        hist[w * kHistKeys + e] = run;
        run += c;
      }
    }
    __syncthreads();
    place_items(keys, s0, s1, num_keys, own, out);
    return;
  }
  if (threadIdx.x < 32) place_items(keys, 0, items, num_keys, counts, out);
}

// permute_block for a few items (decode: items <= kSmallPermute): one item per thread, every rank
// counted directly from the keys in shared memory; three barriers instead of the scans. Same results.
constexpr int32_t kSmallPermute = 64;
// keys_s: the items' keys in shared memory (route_token's copies); entries outside [0, num_keys)
// are skipped like permute_block's.
__device__ void permute_small(int32_t* k_s /* [kSmallPermute], the keys */, int32_t items, int32_t num_keys,
                              const PermuteOut& out, int32_t* first_s /* [kSmallPermute] */) {
  const int32_t i = threadIdx.x;
  int32_t key = -1;
  if (i < items) {
    key = k_s[i];
    if (key < 0 || key >= num_keys) key = -1;
  }
  __syncthreads();
  if (i < items) k_s[i] = key;
  __syncthreads();
  if (i < items) {
    int32_t first = key >= 0;
    for (int32_t j = 0; j < i && first; ++j) first = k_s[j] != key;
    first_s[i] = first;
  }
  __syncthreads();
  if (i < items && key >= 0) {
    int32_t rank = 0, active_rank = 0;
    for (int32_t j = 0; j < items; ++j) {
      const int32_t kj = k_s[j];
      rank += kj >= 0 && (kj < key || (kj == key && j < i));
      active_rank += first_s[j] && kj < key;
    }
    out.permuted_item[rank] = i;
    out.item_position[i] = rank;
    if (out.active && first_s[i]) out.active[active_rank] = key;
    if (out.counts_accum && i < out.counted_items)
      atomicAdd(reinterpret_cast<unsigned long long*>(out.counts_accum + key), 1ull);
  }
  for (int32_t e = i; e <= num_keys; e += blockDim.x) {
    int32_t below = 0;
    for (int32_t j = 0; j < items; ++j) below += k_s[j] >= 0 && k_s[j] < e;
    out.offsets[e] = e == num_keys ? items : below;
  }
  if (i == 0 && out.num_active) {
    int32_t n = 0;
    for (int32_t j = 0; j < items; ++j) n += first_s[j];
    *out.num_active = n;
  }
}

__global__ void __launch_bounds__(kThreads) topk_routing_kernel(TopKRoutingParams p) {
  __shared__ float probs[kWarps][kMaxRoutedExperts];
  const int warp = threadIdx.x >> 5;
  const int32_t t = blockIdx.x * kWarps + warp;
  if (t >= p.num_tokens) return;
  route_token(p.logits + int64_t{t} * p.num_experts, p.num_experts, p.top_k,
              p.normalization == TopKNormalization::kRenormalize, probs[warp], p.topk_ids + int64_t{t} * p.top_k,
              p.topk_weights + int64_t{t} * p.top_k);
}

__global__ void __launch_bounds__(kThreads) permute_kernel(PermuteParams p) {
  __shared__ int32_t counts[kMaxRoutedExperts];
  permute_block(p.keys, p.num_items, p.num_keys,
                PermuteOut{p.key_offsets, p.permuted_item, p.item_position, nullptr, nullptr, nullptr, 0}, counts,
                nullptr, nullptr);
}

// Router logits (float32): one block per (expert row, 4 tokens), the whole block on one dot product
// so that a token's row streams with many loads in flight. The last block of each group of 4 tokens
// (a ticket per group) routes that group's tokens, a warp per token; with more than one group, the
// last group to finish (one more ticket) permutes every token. Routing is parallel over the groups:
// one block routing every token serially cost O(tokens) on the critical path of each layer (64
// tokens per warp at a 512-token prefill). route_cluster_kernel (<= 4 tokens) computes the same
// logits with the same code.
constexpr int kRouteTokens = 4;
static_assert(kRouteTokens <= kWarps, "a warp routes each token of a group");

// 1 / rms of each of the block's tokens (1 without a fused norm); every thread gets them.
__device__ __forceinline__ void route_inv_rms(const RouteCudaParams& p, int32_t t0, float* inv_rms, float* scratch) {
#pragma unroll
  for (int r = 0; r < kRouteTokens; ++r) inv_rms[r] = 1.0f;
  if (!p.norm_weight) return;
#pragma unroll
  for (int r = 0; r < kRouteTokens; ++r) {
    if (t0 + r < p.num_tokens) {  // uniform over the block
      const float* xr = p.x + int64_t{t0 + r} * p.hidden;
      float ss = 0.0f;
#pragma unroll 4
      for (int32_t i = threadIdx.x * 4; i < p.hidden; i += kThreads * 4) {
        const float4 v = *reinterpret_cast<const float4*>(xr + i);
        ss = __fmaf_rn(v.x, v.x, ss);
        ss = __fmaf_rn(v.y, v.y, ss);
        ss = __fmaf_rn(v.z, v.z, ss);
        ss = __fmaf_rn(v.w, v.w, ss);
      }
      inv_rms[r] = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(p.hidden) + p.eps);
    }
  }
}

// Expert e's logits for tokens t0 .. t0 + 3 (the block's threads together; explicit roundings, so
// that both router kernels give the same bits); thread r < 4 returns token t0 + r's logit. wrow(i):
// the router row's float4 at element i (registers, shared or global memory: the same values).
// The expert-0 blocks publish the normalised rows.
template <typename WRow>
__device__ __forceinline__ float route_logit(const RouteCudaParams& p, int32_t e, int32_t t0, const float* inv_rms,
                                             float (*partial)[kRouteTokens], WRow wrow) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float acc[kRouteTokens] = {0, 0, 0, 0};
  const float4 nzero = make_float4(0, 0, 0, 0);
  for (int32_t i = static_cast<int32_t>(threadIdx.x) * 4; i < p.hidden; i += kThreads * 4) {
    const float4 wv = wrow(i);
    const float4 nv = p.norm_weight ? *reinterpret_cast<const float4*>(p.norm_weight + i) : nzero;
#pragma unroll
    for (int r = 0; r < kRouteTokens; ++r) {
      if (t0 + r < p.num_tokens) {
        float4 xv = *reinterpret_cast<const float4*>(p.x + int64_t{t0 + r} * p.hidden + i);
        if (p.norm_weight) {
          xv = make_float4(__fmul_rn(nv.x, __fmul_rn(xv.x, inv_rms[r])), __fmul_rn(nv.y, __fmul_rn(xv.y, inv_rms[r])),
                           __fmul_rn(nv.z, __fmul_rn(xv.z, inv_rms[r])), __fmul_rn(nv.w, __fmul_rn(xv.w, inv_rms[r])));
          if (e == 0) {
            const int64_t o = int64_t{t0 + r} * p.hidden + i;
            if (p.norm_out) *reinterpret_cast<float4*>(p.norm_out + o) = xv;
            if (p.norm_out_bf16) {
              p.norm_out_bf16[o] = __float2bfloat16(xv.x);
              p.norm_out_bf16[o + 1] = __float2bfloat16(xv.y);
              p.norm_out_bf16[o + 2] = __float2bfloat16(xv.z);
              p.norm_out_bf16[o + 3] = __float2bfloat16(xv.w);
            }
          }
        }
        float d = __fmul_rn(xv.x, wv.x);
        d = __fmaf_rn(xv.y, wv.y, d);
        d = __fmaf_rn(xv.z, wv.z, d);
        d = __fmaf_rn(xv.w, wv.w, d);
        acc[r] = __fadd_rn(acc[r], d);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRouteTokens; ++r) {
    float v = acc[r];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) partial[warp][r] = v;
  }
  __syncthreads();
  float v = 0.0f;
  if (threadIdx.x < kRouteTokens) {
    for (int wi = 0; wi < kWarps; ++wi) v = __fadd_rn(v, partial[wi][threadIdx.x]);
  }
  __syncthreads();  // partial may be reused
  return v;
}

// After a block's logits (grid: blocks of one token group along x, groups along y): the last block
// of its group to finish (ticket 1 + group) routes the group's tokens, a warp per token; with
// several groups, the last group to be routed (ticket 0) permutes every token.
__device__ void route_group_then_permute(const RouteCudaParams& p, int32_t t0, int32_t group_tokens,
                                         float (*probs)[kMaxRoutedExperts], int32_t* small_keys, int32_t& is_last) {
  const int warp = threadIdx.x >> 5;
  detail::pdl_launch_dependents();  // late: only the routing and the permutation remain
  __threadfence();
  __syncthreads();
  // ticket[1 + group]: the last of the group's expert blocks routes the group's tokens.
  if (threadIdx.x == 0) {
    if (p.logits_ready) atomicAdd(p.logits_ready, 1);  // (after the fence above)
    int32_t* group_ticket = p.ticket + 1 + blockIdx.y;
    is_last = atomicAdd(group_ticket, 1) == static_cast<int32_t>(gridDim.x) - 1;
    if (is_last) *group_ticket = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const bool renormalize = p.normalization == TopKNormalization::kRenormalize;
  const bool small = p.num_tokens * p.top_k <= kSmallPermute;
  const int32_t t = t0 + warp;
  if (warp < group_tokens && t < p.num_tokens) {
    route_token(p.logits + int64_t{t} * p.num_experts, p.num_experts, p.top_k, renormalize, probs[warp],
                p.topk_ids + int64_t{t} * p.top_k, p.topk_weights + int64_t{t} * p.top_k,
                small ? small_keys + t * p.top_k : nullptr);
  }
  __syncthreads();
  if (gridDim.y > 1) {
    // ticket[0]: the last group to be routed permutes every token (its keys come from global memory:
    // the other groups' blocks wrote them).
    __threadfence();
    if (threadIdx.x == 0) {
      is_last = atomicAdd(p.ticket, 1) == static_cast<int32_t>(gridDim.y) - 1;
      if (is_last) *p.ticket = 0;
    }
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    if (small) {
      for (int32_t i = threadIdx.x; i < p.num_tokens * p.top_k; i += kThreads) small_keys[i] = __ldcg(p.topk_ids + i);
    }
    __syncthreads();
  }
  int32_t* counts = reinterpret_cast<int32_t*>(probs);  // probs are no longer needed
  const int32_t counted = p.num_counted_tokens ? min(*p.num_counted_tokens, p.num_tokens) : p.num_tokens;
  const PermuteOut out{p.expert_offsets, p.permuted_item, p.item_position,  p.active_experts,
                       p.num_active,     p.expert_tokens, counted * p.top_k};
  if (small) {
    permute_small(small_keys, p.num_tokens * p.top_k, p.num_experts, out, counts);
  } else {
    // probs (kWarps x kMaxRoutedExperts floats) hold the cursors, the routing counts and the histograms.
    static_assert(kWarps * kMaxRoutedExperts >= 2 * kMaxRoutedExperts + kWarps * kHistKeys, "scratch too small");
    permute_block(p.topk_ids, p.num_tokens * p.top_k, p.num_experts, out, counts,
                  p.expert_tokens ? counts + kMaxRoutedExperts : nullptr, counts + 2 * kMaxRoutedExperts);
  }
}

__global__ void __launch_bounds__(kThreads) route_kernel(RouteCudaParams p) {
  __shared__ float probs[kWarps][kMaxRoutedExperts];
  __shared__ float partial[kWarps][kRouteTokens];
  __shared__ float scratch[33];
  __shared__ int32_t is_last;
  __shared__ int32_t small_keys[kSmallPermute];
  const int32_t e = blockIdx.x;
  const int32_t t0 = blockIdx.y * kRouteTokens;
  // The router row (a constant) for hidden <= 4096 is loaded before the wait for the previous kernel.
  constexpr int kPre = 4;
  float4 wpre[kPre];
#pragma unroll
  for (int u = 0; u < kPre; ++u) {
    const int32_t i = (static_cast<int32_t>(threadIdx.x) + u * kThreads) * 4;
    wpre[u] = i < p.hidden ? __ldg(reinterpret_cast<const float4*>(p.router + int64_t{e} * p.hidden + i))
                           : make_float4(0, 0, 0, 0);
  }
  detail::pdl_wait();
  {
    float inv_rms[kRouteTokens];
    route_inv_rms(p, t0, inv_rms, scratch);
    const float* w = p.router + int64_t{e} * p.hidden;
    const float v = route_logit(p, e, t0, inv_rms, partial, [&](int32_t i) {
      const int32_t u = (i / 4 - static_cast<int32_t>(threadIdx.x)) / kThreads;  // this thread's u-th float4
      if (u < kPre) {
        float4 r = wpre[0];
#pragma unroll
        for (int k = 1; k < kPre; ++k) r = u == k ? wpre[k] : r;
        return r;
      }
      return *reinterpret_cast<const float4*>(w + i);
    });
    if (threadIdx.x < kRouteTokens && t0 + static_cast<int32_t>(threadIdx.x) < p.num_tokens) {
      p.logits[int64_t{t0 + static_cast<int32_t>(threadIdx.x)} * p.num_experts + e] = v;
    }
  }
  route_group_then_permute(p, t0, kRouteTokens, probs, small_keys, is_last);
}

// The router for prefill-sized launches (more than kRouteWideMinTokens tokens, no fused norm): one
// block per (16 experts, 8 tokens), each warp on 2 experts x 8 tokens, so that a block reads its
// token rows once for 16 experts (route_kernel reads every token row once per expert: at 512
// tokens x 128 experts, 0.5 GB per layer). Each warp reproduces route_logit's arithmetic exactly:
// for each of the 8 warps of a route_kernel block in turn, lane l sums the elements that thread
// (warp, l) would (the same fma chains, ascending), the warp reduces them with the same xor tree,
// and lane 0 adds the 8 warp sums in order. So a token's logits have the same bits as alone (or in
// any other batch) through route_kernel or the cluster kernel.
constexpr int32_t kRouteWideMinTokens = 64;   // launches of more tokens take the wide router
constexpr int32_t kRouteWideMinExperts = 32;  // (fewer experts: route_kernel's grid is small anyway)
constexpr int kWideTokens = kWarps;           // tokens per block (a warp routes each)
constexpr int kWideExpertsPerWarp = 2;
constexpr int kWideExperts = kWarps * kWideExpertsPerWarp;

__global__ void __launch_bounds__(kThreads) route_wide_kernel(RouteCudaParams p) {
  __shared__ float probs[kWarps][kMaxRoutedExperts];
  __shared__ int32_t is_last;
  __shared__ int32_t small_keys[kSmallPermute];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t t0 = blockIdx.y * kWideTokens;
  const int32_t e0 = blockIdx.x * kWideExperts + warp * kWideExpertsPerWarp;
  const int32_t nt = min(kWideTokens, p.num_tokens - t0);
  const bool warp_works = e0 < p.num_experts;
  detail::pdl_wait();
  float total[kWideExpertsPerWarp][kWideTokens];
#pragma unroll
  for (int x = 0; x < kWideExpertsPerWarp; ++x)
#pragma unroll
    for (int r = 0; r < kWideTokens; ++r) total[x][r] = 0.0f;
  const float4 zero = make_float4(0, 0, 0, 0);
  for (int w = 0; w < kWarps; ++w) {  // route_kernel's warp w
    float acc[kWideExpertsPerWarp][kWideTokens];
#pragma unroll
    for (int x = 0; x < kWideExpertsPerWarp; ++x)
#pragma unroll
      for (int r = 0; r < kWideTokens; ++r) acc[x][r] = 0.0f;
    // Every load of an iteration is issued before its arithmetic (rows past the launch's tokens
    // re-read the last row; their sums are never stored).
    for (int32_t i = (w * 32 + lane) * 4; warp_works && i < p.hidden; i += kThreads * 4) {
      float4 wv[kWideExpertsPerWarp], xv[kWideTokens];
#pragma unroll
      for (int x = 0; x < kWideExpertsPerWarp; ++x) {
        wv[x] = e0 + x < p.num_experts
                    ? __ldg(reinterpret_cast<const float4*>(p.router + int64_t{e0 + x} * p.hidden + i))
                    : zero;
      }
#pragma unroll
      for (int r = 0; r < kWideTokens; ++r) {
        xv[r] = *reinterpret_cast<const float4*>(p.x + int64_t{t0 + min(r, nt - 1)} * p.hidden + i);
      }
#pragma unroll
      for (int r = 0; r < kWideTokens; ++r) {
#pragma unroll
        for (int x = 0; x < kWideExpertsPerWarp; ++x) {
          float d = __fmul_rn(xv[r].x, wv[x].x);
          d = __fmaf_rn(xv[r].y, wv[x].y, d);
          d = __fmaf_rn(xv[r].z, wv[x].z, d);
          d = __fmaf_rn(xv[r].w, wv[x].w, d);
          acc[x][r] = __fadd_rn(acc[x][r], d);
        }
      }
    }
#pragma unroll
    for (int x = 0; x < kWideExpertsPerWarp; ++x) {
#pragma unroll
      for (int r = 0; r < kWideTokens; ++r) {
        float v = acc[x][r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
        total[x][r] = __fadd_rn(total[x][r], v);
      }
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int x = 0; x < kWideExpertsPerWarp; ++x) {
#pragma unroll
      for (int r = 0; r < kWideTokens; ++r) {
        if (r < nt && e0 + x < p.num_experts) p.logits[int64_t{t0 + r} * p.num_experts + e0 + x] = total[x][r];
      }
    }
  }
  route_group_then_permute(p, t0, kWideTokens, probs, small_keys, is_last);
}

// The router for <= kRouteTokens tokens as one thread-block cluster of CL blocks: block b computes
// the logits of experts b, b + CL, ... (their router rows copied into shared memory before the wait
// for the previous kernel), the cluster meets at a barrier, and block 0 reads every logit through
// distributed shared memory, routes and permutes: no ticket, no global round trip. Same bits as
// route_kernel (route_logit, route_token, permute_small).
constexpr int kRouteClusterMaxRows = 16;  // experts per block
__global__ void __launch_bounds__(kThreads) route_cluster_kernel(RouteCudaParams p) {
  extern __shared__ __align__(16) float wrows[];  // [rows][hidden]
  __shared__ float probs[kRouteTokens][kMaxRoutedExperts];
  __shared__ float own[kRouteTokens][kRouteClusterMaxRows];
  __shared__ float partial[kWarps][kRouteTokens];
  __shared__ float scratch[33];
  __shared__ int32_t small_keys[kSmallPermute];
  cg::cluster_group cluster = cg::this_cluster();
  const int32_t b = static_cast<int32_t>(cluster.block_rank()), cl = static_cast<int32_t>(cluster.num_blocks());
  const int32_t rows = (p.num_experts - b + cl - 1) / cl;
  const int32_t h4 = p.hidden / 4;
  for (int32_t i = threadIdx.x; i < rows * h4; i += kThreads) {
    const int32_t j = i / h4, c = i - j * h4;
    detail::cp_async16(wrows + int64_t{i} * 4, p.router + (int64_t{b} + int64_t{j} * cl) * p.hidden + 4 * c);
  }
  detail::cp_async_commit();
  detail::pdl_wait();
  float inv_rms[kRouteTokens];
  route_inv_rms(p, 0, inv_rms, scratch);
  detail::cp_async_wait<0>();
  __syncthreads();
  for (int32_t j = 0; j < rows; ++j) {
    const int32_t e = b + j * cl;
    const float* w = wrows + int64_t{j} * p.hidden;
    const float v =
        route_logit(p, e, 0, inv_rms, partial, [&](int32_t i) { return *reinterpret_cast<const float4*>(w + i); });
    if (threadIdx.x < kRouteTokens && static_cast<int32_t>(threadIdx.x) < p.num_tokens) {
      own[threadIdx.x][j] = v;
      p.logits[int64_t{threadIdx.x} * p.num_experts + e] = v;
    }
  }
  detail::pdl_launch_dependents();  // late: only the routing remains
  cluster.sync();
  if (b == 0) {
    for (int32_t i = threadIdx.x; i < p.num_tokens * p.num_experts; i += kThreads) {
      const int32_t t = i / p.num_experts, e = i - t * p.num_experts;
      probs[t][e] = cluster.map_shared_rank(&own[0][0], e % cl)[t * kRouteClusterMaxRows + e / cl];
    }
  }
  cluster.sync();  // block 0 has every logit: the others may leave
  if (b != 0) return;
  const int warp = threadIdx.x >> 5;
  __shared__ float wprobs[kRouteTokens][kMaxRoutedExperts];
  if (warp < p.num_tokens) {
    route_token<true>(probs[warp], p.num_experts, p.top_k, p.normalization == TopKNormalization::kRenormalize,
                      wprobs[warp], p.topk_ids + int64_t{warp} * p.top_k, p.topk_weights + int64_t{warp} * p.top_k,
                      small_keys + warp * p.top_k);
  }
  __syncthreads();
  int32_t* counts = reinterpret_cast<int32_t*>(wprobs);
  const int32_t counted = p.num_counted_tokens ? min(*p.num_counted_tokens, p.num_tokens) : p.num_tokens;
  const PermuteOut out{p.expert_offsets, p.permuted_item, p.item_position,  p.active_experts,
                       p.num_active,     p.expert_tokens, counted * p.top_k};
  permute_small(small_keys, p.num_tokens * p.top_k, p.num_experts, out, counts);
}

// Sorts a token's choices by expert id (top_k <= kMaxTopK), in shared memory.
__device__ void sort_choices(const int32_t* ids, int32_t top_k, int32_t* order) {
  if (threadIdx.x == 0) detail::sort_by_expert(ids, top_k, order);
  __syncthreads();
}

__global__ void combine_kernel(CombineParams p, int64_t stride) {
  __shared__ int32_t order[kMaxTopK];
  const int32_t t = blockIdx.x;
  const int32_t* ids = p.topk_ids + int64_t{t} * p.top_k;
  sort_choices(ids, p.top_k, order);
  float* out = p.out + int64_t{t} * p.hidden;
  for (int32_t h = threadIdx.x; h < p.hidden; h += blockDim.x) {
    float acc = 0.0f;
    for (int32_t n = 0; n < p.top_k; ++n) {
      const int64_t item = int64_t{t} * p.top_k + order[n];
      acc += p.expert_out[int64_t{p.item_position[item]} * stride + h] * p.topk_weights[item];
    }
    out[h] = acc;
  }
}

// trigger_early (kEarlyCombine): the dependents (the next qkv GEMV) may launch once this block has
// waited for the experts, so that they load their first weights meanwhile.
__global__ void moe_combine_kernel(MoeCombineCudaParams p, int64_t stride, bool trigger_early) {
  __shared__ int32_t order[kMaxTopK];
  __shared__ const float* rows[kMaxTopK];  // expert output rows, in increasing expert id order
  __shared__ float weights[kMaxTopK];
  __shared__ float scratch[33];
  detail::pdl_wait();
  if (trigger_early) detail::pdl_launch_dependents();
  const int32_t t = blockIdx.x;
  const int32_t* ids = p.topk_ids + int64_t{t} * p.top_k;
  sort_choices(ids, p.top_k, order);
  if (threadIdx.x < p.top_k) {
    const int64_t item = int64_t{t} * p.top_k + order[threadIdx.x];
    rows[threadIdx.x] = p.expert_out + int64_t{p.item_position[item]} * stride;
    weights[threadIdx.x] = p.topk_weights[item];
  }
  __syncthreads();
  const float gate = p.shared_out ? (p.shared_gate ? 1.0f / (1.0f + expf(-p.shared_gate[t])) : 1.0f) : 0.0f;
  float* x = p.x + int64_t{t} * p.hidden;
  float ss = 0.0f;
  for (int32_t h = threadIdx.x; h < p.hidden; h += blockDim.x) {
    float v[kMaxTopK];
#pragma unroll
    for (int n = 0; n < kMaxTopK; ++n) v[n] = n < p.top_k ? rows[n][h] : 0.0f;  // all loads in flight
    const float xh = x[h];
    const float sh = p.shared_out ? p.shared_out[int64_t{t} * p.hidden + h] : 0.0f;
    const float out = detail::moe_combine_value(xh, v, weights, p.top_k, p.shared_out != nullptr, gate, sh);
    x[h] = out;
    ss += out * out;
  }
  if (!p.norm_weight) return;
  const float inv_rms = 1.0f / sqrtf(detail::block_sum(ss, scratch) / static_cast<float>(p.hidden) + p.eps);
  for (int32_t h = threadIdx.x; h < p.hidden; h += blockDim.x) {
    const float v = __fmul_rn(p.norm_weight[h], __fmul_rn(x[h], inv_rms));
    if (p.norm_out) p.norm_out[int64_t{t} * p.hidden + h] = v;
    if (p.norm_out_bf16) p.norm_out_bf16[int64_t{t} * p.hidden + h] = __float2bfloat16(v);
  }
}

// The combine without the norm, spread over blocks of kCombineThreads x 4 elements of a row: the
// same arithmetic per element as moe_combine_kernel, for small decode batches (the next norm is
// fused into its consumer). trigger_early: as moe_combine_kernel's.
constexpr int kCombineThreads = 128;
__global__ void __launch_bounds__(kCombineThreads)
    moe_combine_wide_kernel(MoeCombineCudaParams p, int64_t stride, bool trigger_early) {
  __shared__ int32_t order[kMaxTopK];
  __shared__ const float* rows[kMaxTopK];
  __shared__ float weights[kMaxTopK];
  // The routing arrays come from the router, three launches back (router, gate_up, down): complete
  // before this kernel can start, even launched early (the down GEMV's blocks trigger after their
  // wait for gate_up, whose blocks waited for the router). Only the expert outputs need the wait.
  const int32_t t = blockIdx.x;
  const int32_t* ids = p.topk_ids + int64_t{t} * p.top_k;
  sort_choices(ids, p.top_k, order);
  if (threadIdx.x < p.top_k) {
    const int64_t item = int64_t{t} * p.top_k + order[threadIdx.x];
    rows[threadIdx.x] = p.expert_out + int64_t{p.item_position[item]} * stride;
    weights[threadIdx.x] = p.topk_weights[item];
  }
  detail::pdl_wait();
  if (trigger_early) detail::pdl_launch_dependents();
  __syncthreads();
  const int32_t h = (blockIdx.y * kCombineThreads + threadIdx.x) * 4;
  if (h >= p.hidden) return;
  const float gate = p.shared_out ? (p.shared_gate ? 1.0f / (1.0f + expf(-p.shared_gate[t])) : 1.0f) : 0.0f;
  float4 v[kMaxTopK];
#pragma unroll
  for (int n = 0; n < kMaxTopK; ++n)
    v[n] = n < p.top_k ? *reinterpret_cast<const float4*>(rows[n] + h) : make_float4(0, 0, 0, 0);
  float4* xp = reinterpret_cast<float4*>(p.x + int64_t{t} * p.hidden + h);
  const float4 xh = *xp;
  const float4 sh = p.shared_out ? *reinterpret_cast<const float4*>(p.shared_out + int64_t{t} * p.hidden + h)
                                 : make_float4(0, 0, 0, 0);
  float c[4][kMaxTopK];
#pragma unroll
  for (int n = 0; n < kMaxTopK; ++n) c[0][n] = v[n].x, c[1][n] = v[n].y, c[2][n] = v[n].z, c[3][n] = v[n].w;
  const bool shared = p.shared_out != nullptr;
  *xp = make_float4(detail::moe_combine_value(xh.x, c[0], weights, p.top_k, shared, gate, sh.x),
                    detail::moe_combine_value(xh.y, c[1], weights, p.top_k, shared, gate, sh.y),
                    detail::moe_combine_value(xh.z, c[2], weights, p.top_k, shared, gate, sh.z),
                    detail::moe_combine_value(xh.w, c[3], weights, p.top_k, shared, gate, sh.w));
}

}  // namespace

void launch_topk_routing(const TopKRoutingParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(
      p.num_experts <= kMaxRoutedExperts && p.top_k >= 1 && p.top_k <= kMaxTopK && p.top_k <= p.num_experts,
      "routing shape unsupported: " << p.num_experts << " experts, top " << p.top_k);
  topk_routing_kernel<<<detail::ceil_div(p.num_tokens, kWarps), kThreads, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_permute(const PermuteParams& p, cudaStream_t stream) {
  AURORA_KERNEL_CHECK(p.num_keys <= kMaxRoutedExperts, "too many keys: " << p.num_keys);
  permute_kernel<<<1, kThreads, 0, stream>>>(p);
  AURORA_CUDA_LAUNCH_CHECK();
}

void launch_combine(const CombineParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(p.top_k >= 1 && p.top_k <= kMaxTopK, "top_k " << p.top_k);
  combine_kernel<<<p.num_tokens, kThreads, 0, stream>>>(p, p.expert_out_stride ? p.expert_out_stride : p.hidden);
  AURORA_CUDA_LAUNCH_CHECK();
}

namespace {

// Whether route_cluster_kernel runs as clusters of `cl` blocks with `smem` dynamic bytes on the
// current device (cluster_probe.cuh: decided once, before any graph capture).
bool route_cluster_runnable(int cl, size_t smem) {
  return detail::cluster_runnable(reinterpret_cast<const void*>(route_cluster_kernel), cl, kThreads, smem, true);
}

// The cluster router for <= 4 tokens, by default only with AURORA_CLUSTER_ROUTER=1: measured slower
// than the ticket kernel for 64 and 128 experts (H200, 2026-11-28 19:43 UTC: Qwen3-30B-A3B batch 1
// 5.007 vs 4.809 ms, OLMoE 1.506 vs 1.483 ms; Mixtral within noise), because 16 blocks stream the
// whole router matrix where the ticket kernel spreads it over one block per expert.
bool cluster_router_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_CLUSTER_ROUTER");
    const char* safe = std::getenv("AURORA_SAFE_KERNELS");
    return v && v[0] == '1' && !(safe && safe[0] == '1');
  }();
  return on;
}

// Launches route_cluster_kernel when it applies; false: use route_kernel.
bool launch_route_cluster(const RouteCudaParams& p, cudaStream_t stream) {
  if (!p.allow_cluster || !(p.force_cluster || cluster_router_enabled()) || p.num_tokens > kRouteTokens ||
      p.num_tokens * p.top_k > kSmallPermute) {
    return false;
  }
  const int cl = std::min(p.num_experts, 16);
  const int rows = (p.num_experts + cl - 1) / cl;
  const size_t smem = size_t(rows) * size_t(p.hidden) * sizeof(float);
  if (rows > kRouteClusterMaxRows || smem > 128 * 1024 || !route_cluster_runnable(cl, smem)) return false;
  static bool pdl_refused = false;
  detail::launch_clusters(pdl_refused, pdl_mode() >= 1, route_cluster_kernel, dim3(static_cast<unsigned>(cl)), cl,
                          kThreads, smem, stream, p);
  return true;
}

}  // namespace

int32_t route_ticket_count(int32_t max_tokens) { return 1 + detail::ceil_div(std::max(max_tokens, 1), kRouteTokens); }

void launch_route(const RouteCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(
      p.num_experts <= kMaxRoutedExperts && p.top_k >= 1 && p.top_k <= kMaxTopK && p.top_k <= p.num_experts &&
          p.hidden % 4 == 0,
      "routing shape unsupported: " << p.num_experts << " experts, top " << p.top_k << ", hidden " << p.hidden);
  AURORA_KERNEL_CHECK(!p.logits_ready || p.num_tokens <= kRouteTokens,
                      "logits_ready needs at most " << kRouteTokens << " tokens, got num_tokens " << p.num_tokens);
  if (!p.logits_ready && launch_route_cluster(p, stream)) return;
  if (p.num_tokens > kRouteWideMinTokens && p.num_experts >= kRouteWideMinExperts && !p.norm_weight) {
    const dim3 wide(static_cast<unsigned>(detail::ceil_div(p.num_experts, kWideExperts)),
                    static_cast<unsigned>(detail::ceil_div(p.num_tokens, kWideTokens)));
    launch_pdl(route_wide_kernel, wide, dim3(kThreads), 0, stream, p);
    return;
  }
  const dim3 grid(static_cast<unsigned>(p.num_experts),
                  static_cast<unsigned>(detail::ceil_div(p.num_tokens, kRouteTokens)));
  launch_pdl(route_kernel, grid, dim3(kThreads), 0, stream, p);
}

void launch_moe_combine(const MoeCombineCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return;
  AURORA_KERNEL_CHECK(p.top_k >= 1 && p.top_k <= kMaxTopK, "top_k " << p.top_k);
  const int64_t stride = p.expert_out_stride ? p.expert_out_stride : int64_t{p.hidden};
  if (!p.norm_weight && p.hidden % 4 == 0 && stride % 4 == 0) {
    const dim3 grid(static_cast<unsigned>(p.num_tokens),
                    static_cast<unsigned>(detail::ceil_div(p.hidden, kCombineThreads * 4)));
    launch_pdl(moe_combine_wide_kernel, grid, dim3(kCombineThreads), 0, stream, p, stride,
               (early_launches() & kEarlyCombine) != 0);
    return;
  }
  launch_pdl(moe_combine_kernel, dim3(p.num_tokens), dim3(1024), 0, stream, p, stride,
             (early_launches() & kEarlyCombine) != 0);
}

}  // namespace aurora::kernels::cuda
