// Decode attention on tensor cores: by default for batches the cluster kernel does not take (more
// than kClusterAttentionAutoTokens tokens); one block of 4 warps per (kv head, token, range of keys).
//
// The rows of the products are the kv head's query heads (its group, <= 16, padded to the mma's 16
// rows), so one pass over a key serves the whole group. The token's context, from a multiple of
// kStepKeys (the window's start rounded down), is cut into ranges of R keys (R = kRangeKeys, or
// kSmallRangeKeys for launches of <= kClusterAttentionAutoTokens tokens; a last range of at most
// R / 4 keys is folded into the one before it) and those into steps of kStepKeys; warp w of a range's block takes steps
// w, w + 4, w + 8, ..., streams their K and V rows from the paged cache into its own three-stage ring in shared memory
// (16-byte asynchronous copies, zero-filled past the context), and runs S = Q K^T and O += P V as mma.m16n8k16 (bf16
// in, float32 accumulation) with an online softmax in base 2 (scale folded in). The block merges its four warps' (max,
// sum, output) in warp order; a context of one range is then done, longer ones leave each range's (max, sum, output) in
// the workspace and the last block of the (token, kv head) to finish (a self-resetting ticket) merges the ranges in
// order. So a row's bits depend on its token's context (and R) alone, not on the batch or the grid. Queries are rounded
// to bf16, as in the prefill attention. The K/V rows of a warp's first steps that no kernel of this step writes
// (positions below the sequence's first one in the launch) are copied before the wait for the qkv prologue; small
// launches let their dependents (o_proj) launch right after that wait.
#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>

#include "attention_decode.cuh"
#include "aurora/kernels/cuda/launch.hpp"
#include "aurora/kernels/kernel_check.hpp"
#include "cluster_probe.cuh"
#include "device_utils.cuh"
#include "flash_step.cuh"
#include "mma.cuh"

namespace aurora::kernels::cuda::detail {
namespace {
namespace cg = cooperative_groups;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kStepKeys = 16;        // keys per step: one k-step of P V
constexpr int kRangeKeys = 512;      // keys per block: longer contexts spread over blocks
constexpr int kSmallRangeKeys = 64;  // ... in launches of <= kClusterAttentionAutoTokens tokens

// Ranges of R keys over a context of `len` keys from its first step; the last takes the rest, so a
// rest of at most R / 4 keys joins the range before it rather than a block of its own.
__host__ __device__ constexpr int32_t ranges_for(int32_t len, int32_t R) {
  return len > R + R / 4 ? (len - R / 4 + R - 1) / R : 1;
}
constexpr int kPad = 8;  // bf16 elements of row padding: ldmatrix rows fall in distinct banks

// The clustered kernel: the ranges of a (token, kv head) are the blocks of one thread-block cluster
// of CL = 4, 8 or 16 blocks (the grid's x), each range of R = max(the launch's range, 64 x ceil(keys
// / (64 CL))) keys (so at most CL of them; R depends on the token's context and CL alone), merged
// through distributed shared memory: no workspace, no ticket, and the merge spread over the
// cluster's blocks.
constexpr int kMaxClusterRanges = 16;

template <bool kClustered>
constexpr int stages() {
  return kClustered ? 2 : 3;  // the clustered kernel's ranges are short: two stages, more blocks per SM
}

template <int HD, bool kClustered>
constexpr size_t ring_bytes() {
  // Per warp: stages x (K, V) x kStepKeys rows; after the keys, the warp's output [16][HD] float32
  // and (max, sum) of its 16 rows reuse its ring.
  constexpr size_t ring = sizeof(bf16) * size_t(stages<kClustered>()) * 2 * kStepKeys * (HD + kPad);
  static_assert(ring >= sizeof(float) * (16 * HD + 32), "the merge's scratch fits in a warp's ring");
  return ring;
}

template <int HD, bool kClustered>
constexpr size_t decode_smem_bytes() {
  // The clustered kernel adds the block's merged state: output [16][HD], then max [16] and sum [16].
  return kWarps * ring_bytes<HD, kClustered>() + (kClustered ? sizeof(float) * (16 * HD + 32) : 0);
}

template <int HD, bool kClustered>
__global__ void __launch_bounds__(kThreads)
    decode_mma_attention_kernel(PagedAttentionCudaParams p, float scale_log2, DecodeAttentionWorkspace wsp,
                                int32_t range_keys, bool trigger_early) {
  constexpr int kRow = HD + kPad;
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  constexpr int kStages = stages<kClustered>();
  constexpr size_t kRing = ring_bytes<HD, kClustered>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, q4 = lane & 3;
  __shared__ int32_t is_last;
  // Grid: (kv heads, tokens, ranges), or clusters of (ranges) x kv heads x tokens.
  const int kvh = kClustered ? blockIdx.y : blockIdx.x;
  const int t = kClustered ? blockIdx.z : blockIdx.y;
  const int range = kClustered ? blockIdx.x : blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  bf16* ring = reinterpret_cast<bf16*>(smem_raw + warp * kRing);  // [stage][K, V][kStepKeys][kRow]

  // Positions and block tables are step inputs (no kernel writes them): read before the wait.
  const int32_t pos = p.token_pos[t];
  const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
  const int32_t key_lo = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int32_t key_base = key_lo / kStepKeys * kStepKeys;
  const int32_t len = pos + 1 - key_base;
  const int32_t cl = static_cast<int32_t>(gridDim.x);  // (clustered: the cluster's size)
  const int32_t R = kClustered
                        ? max(range_keys, kSmallRangeKeys * ((len + kSmallRangeKeys * cl - 1) / (kSmallRangeKeys * cl)))
                        : range_keys;
  const int32_t ranges = ranges_for(len, R);
  // Blocks of the cluster past the token's ranges take part in its barriers and merge.
  if (!kClustered && range >= ranges) return;
  const int32_t range_base = key_base + range * R;
  const int32_t range_end = range == ranges - 1 ? pos + 1 : range_base + R;
  const int32_t steps = range < ranges ? (range_end - range_base + kStepKeys - 1) / kStepKeys : 0;
  const int32_t mine = steps > warp ? (steps - warp + kWarps - 1) / kWarps : 0;  // this warp's steps
  const int64_t kv_row = int64_t{p.num_kv_heads} * HD;
  const bf16* k_cache = static_cast<const bf16*>(p.k_cache);
  const bf16* v_cache = static_cast<const bf16*>(p.v_cache);
  // This step writes the sequence's cache rows from its smallest position among the launch's tokens
  // on (the qkv prologue, the previous kernel); the rows below it were written by earlier launches.
  int32_t new_from = 0;
  {
    const int32_t seq = p.token_seq[t];
    int32_t lo = pos;
    for (int32_t j = lane; j < p.num_tokens; j += 32) {
      if (p.token_seq[j] == seq) lo = min(lo, p.token_pos[j]);
    }
    new_from = __reduce_min_sync(0xffffffffu, lo);
  }

  // This warp's j-th step into stage j % kStages. kOld: the rows below new_from (and zeros past the
  // context); kNew: the rest; kAll: every row.
  enum Rows { kOld, kNew, kAll };
  auto load_step = [&](int j, Rows which) {
    bf16* sk = ring + (j % kStages) * 2 * kStepKeys * kRow;
    bf16* sv = sk + kStepKeys * kRow;
    const int32_t k0 = range_base + (warp + j * kWarps) * kStepKeys;
#pragma unroll
    for (int i = 0; i < kStepKeys * kChunks / 32; ++i) {
      const int c = lane + 32 * i;
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const int32_t kp = k0 + r;
      const bool valid = kp >= key_lo && kp <= pos;
      const bool fresh = valid && kp >= new_from;
      if (which != kAll && (which == kNew) != fresh) continue;
      int64_t off = 0;
      if (valid) off = (int64_t{table[kp / p.block_size]} * p.block_size + kp % p.block_size) * kv_row + kvh * HD + col;
      cp_async16_zfill(sk + r * kRow + col, k_cache + off, valid);
      cp_async16_zfill(sv + r * kRow + col, v_cache + off, valid);
    }
  };
  // The first steps' old rows before the wait, their new rows after it; the copies issued before the
  // first commit join its group (step 0's), which only makes the first wait wait for more.
#pragma unroll
  for (int j = 0; j < kStages - 1; ++j) {
    if (j < mine) load_step(j, kOld);
  }
  detail::pdl_wait();  // q and this token's own K/V rows come from the prologue
  if (trigger_early) detail::pdl_launch_dependents();
#pragma unroll
  for (int j = 0; j < kStages - 1; ++j) {
    if (j < mine) load_step(j, kNew);
    detail::cp_async_commit();
  }

  // The group's queries (rows g and g + 8; rows past the group are zeros) as A fragments.
  uint32_t qf[HD / 16][4];
  {
    const bool work = mine > 0;  // (zeros otherwise: a warp without steps reads no query)
    const float* q0 = work && g < group ? p.q + (int64_t{t} * p.num_q_heads + int64_t{kvh} * group + g) * HD : nullptr;
    const float* q1 =
        work && g + 8 < group ? p.q + (int64_t{t} * p.num_q_heads + int64_t{kvh} * group + g + 8) * HD : nullptr;
    auto pair = [](const float* row, int d) -> uint32_t {
      if (!row) return 0u;
      const float2 v = *reinterpret_cast<const float2*>(row + d);
      return pack_bf16(v.x, v.y);
    };
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      const int d = ks * 16 + 2 * q4;
      qf[ks][0] = pair(q0, d);
      qf[ks][1] = pair(q1, d);
      qf[ks][2] = pair(q0, d + 8);
      qf[ks][3] = pair(q1, d + 8);
    }
  }

  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  for (int j = 0; j < mine; ++j) {
    if (j + kStages - 1 < mine) load_step(j + kStages - 1, kAll);
    detail::cp_async_commit();  // (possibly empty: the group count stays one per step)
    detail::cp_async_wait<kStages - 1>();
    __syncwarp();
    const bf16* sk = ring + (j % kStages) * 2 * kStepKeys * kRow;
    const bf16* sv = sk + kStepKeys * kRow;
    const int32_t k0 = range_base + (warp + j * kWarps) * kStepKeys;
    float s[kStepKeys / 8][4];
    flash_scores<HD>(s, qf, sk, kRow, lane);
    // Scale, mask (keys before the window or after the token); the rows are the query heads.
#pragma unroll
    for (int nt = 0; nt < kStepKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int32_t kp = k0 + nt * 8 + 2 * q4 + e;
        const bool valid = kp >= key_lo && kp <= pos;
        s[nt][e] = valid ? s[nt][e] * scale_log2 : -INFINITY;
        s[nt][2 + e] = valid ? s[nt][2 + e] * scale_log2 : -INFINITY;
      }
    }
    flash_softmax(s, m0, m1, l0, l1, o);
    flash_pv<HD>(o, s, 0, sv, kRow, lane);
    __syncwarp();  // the next step's loads overwrite a stage this one may still read
  }
  detail::cp_async_wait<0>();
  if (!trigger_early) detail::pdl_launch_dependents();  // late: only the merge remains

  // This warp's state into its ring: out[16][HD], then (max, sum) per row.
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  __syncwarp();
  float* ws = reinterpret_cast<float*>(ring);
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int d = dt * 8 + 2 * q4;
    *reinterpret_cast<float2*>(ws + g * HD + d) = make_float2(o[dt][0], o[dt][1]);
    *reinterpret_cast<float2*>(ws + (g + 8) * HD + d) = make_float2(o[dt][2], o[dt][3]);
  }
  if (q4 == 0) {
    ws[16 * HD + 2 * g] = m0;
    ws[16 * HD + 2 * g + 1] = l0;
    ws[16 * HD + 2 * (g + 8)] = m1;
    ws[16 * HD + 2 * (g + 8) + 1] = l1;
  }
  __syncthreads();
  // The merge, warps in order: the range's max M, sum_w 2^(m_w - M) o_w and sum_w 2^(m_w - M) l_w;
  // their quotient with one range, else the range's share of the workspace.
  const int64_t row0 = int64_t{t} * p.num_q_heads + int64_t{kvh} * group;  // the group's first q row
  for (int e = threadIdx.x; e < group * HD; e += kThreads) {
    const int r = e / HD, d = e - r * HD;
    auto warp_state = [&](int w) { return reinterpret_cast<const float*>(smem_raw + w * kRing); };
    float num = 0.0f, den = 0.0f;
    const float mx = merge_softmax_states<kWarps>(
        kWarps, [&](int w) { return warp_state(w)[16 * HD + 2 * r]; },
        [&](int w, float a) {
          num += a * warp_state(w)[r * HD + d];
          den += a * warp_state(w)[16 * HD + 2 * r + 1];
        });
    if (ranges == 1) {
      if (range == 0) store_from_float(p.out, p.out_dtype, (row0 + r) * HD + d, num / den);
    } else if constexpr (kClustered) {
      float* state = reinterpret_cast<float*>(smem_raw + kWarps * kRing);
      state[r * HD + d] = num;
      if (d == 0) {
        state[16 * HD + r] = mx;
        state[16 * HD + 16 + r] = den;
      }
    } else {
      const int64_t slot = (row0 + r) * wsp.max_ranges + range;
      wsp.part_out[slot * HD + d] = num;
      if (d == 0) {
        wsp.part_ml[2 * slot] = mx;
        wsp.part_ml[2 * slot + 1] = den;
      }
    }
  }
  if (ranges == 1) return;  // the same for every block of a cluster
  if constexpr (kClustered) {
    // The ranges' states, merged in order: block b of the cluster takes elements b x kThreads + tid,
    // then CL x kThreads further, ...
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();
    const float* state = reinterpret_cast<const float*>(smem_raw + kWarps * kRing);
    for (int e = range * kThreads + static_cast<int>(threadIdx.x); e < group * HD; e += cl * kThreads) {
      const int r = e / HD, d = e - r * HD;
      float num = 0.0f, den = 0.0f;
      merge_softmax_states<kMaxClusterRanges>(
          ranges, [&](int q) { return cluster.map_shared_rank(state, q)[16 * HD + r]; },
          [&](int q, float a) {
            const float* sq = cluster.map_shared_rank(state, q);
            num += a * sq[r * HD + d];
            den += a * sq[16 * HD + 16 + r];
          });
      store_from_float(p.out, p.out_dtype, (row0 + r) * HD + d, num / den);
    }
    cluster.sync();  // no block leaves while another reads its shared memory
    return;
  }
  // The last range block of this (token, kv head) merges the ranges in order.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t* ticket = wsp.tickets + int64_t{t} * p.num_kv_heads + kvh;
    is_last = atomicAdd(ticket, 1) == ranges - 1;
    if (is_last) *ticket = 0;
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  for (int e = threadIdx.x; e < group * HD; e += kThreads) {
    const int r = e / HD, d = e - r * HD;
    const int64_t slot0 = (row0 + r) * wsp.max_ranges;
    float num = 0.0f, den = 0.0f;
    merge_softmax_states<0>(
        ranges, [&](int q) { return __ldcg(wsp.part_ml + 2 * (slot0 + q)); },
        [&](int q, float a) {
          num += a * __ldcg(wsp.part_out + (slot0 + q) * HD + d);
          den += a * __ldcg(wsp.part_ml + 2 * (slot0 + q) + 1);
        });
    store_from_float(p.out, p.out_dtype, (row0 + r) * HD + d, num / den);
  }
}

template <int HD>
void launch_hd(const PagedAttentionCudaParams& p, const DecodeAttentionWorkspace& wsp, int32_t ranges,
               int32_t range_keys, bool trigger_early, cudaStream_t stream) {
  constexpr size_t smem = decode_smem_bytes<HD, false>();
  const auto kernel = decode_mma_attention_kernel<HD, false>;
  ensure_dynamic_smem(reinterpret_cast<const void*>(kernel), smem);  // per device, before any capture
  const float scale_log2 = p.scale * 1.4426950408889634f;
  const dim3 grid(static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(p.num_tokens),
                  static_cast<unsigned>(ranges));
  launch_pdl_hinted(int64_t{p.num_tokens} * p.num_kv_heads <= sm_count(), kernel, grid, dim3(kThreads), smem, stream, p,
                    scale_log2, wsp, range_keys, trigger_early);
}

// The clustered kernel as clusters of `cl` blocks where the device runs them; false: not launched.
template <int HD>
bool launch_clustered_hd(const PagedAttentionCudaParams& p, int cl, int32_t range_keys, bool trigger_early,
                         cudaStream_t stream) {
  constexpr size_t smem = decode_smem_bytes<HD, true>();
  const auto kernel = decode_mma_attention_kernel<HD, true>;
  if (!cluster_runnable(reinterpret_cast<const void*>(kernel), cl, kThreads, smem, true)) return false;
  const float scale_log2 = p.scale * 1.4426950408889634f;
  static bool pdl_refused = false;
  const int mode = pdl_mode();
  const bool pdl = mode == 1 || (mode >= 2 && int64_t{p.num_tokens} * p.num_kv_heads <= sm_count());
  launch_clusters(
      pdl_refused, pdl, kernel,
      dim3(static_cast<unsigned>(cl), static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(p.num_tokens)), cl,
      kThreads, smem, stream, p, scale_log2, DecodeAttentionWorkspace{}, range_keys, trigger_early);
  return true;
}

// Small launches (set_small_decode_attention): -1 the default, 0 the cluster kernel, 1 this kernel,
// 2 this kernel without clusters.
int& small_launch_mode() {
  static int mode = env_is("AURORA_DECODE_MMA_SMALL", '0') ? 0 : env_is("AURORA_DECODE_MMA_SMALL", '1') ? 1 : -1;
  return mode;
}

// The cluster size for a launch of <= kClusterAttentionAutoTokens tokens: the largest of 16, 8 and 4
// whose clusters fill at most one block per multiprocessor (batch 1: Mixtral and Qwen3 16; batch 4:
// Mixtral 4, Qwen3 8), else 0: no clusters. By default not where each kv head has one query head
// (OLMoE at batch 1: clusters of 8 measured 3% slower than ranges merged by the last block; of 16,
// 256 blocks, 9%). AURORA_DECODE_MMA_CLUSTER=0: never; AURORA_DECODE_MMA_CLUSTER_MIN=N: not under N
// blocks (to compare).
int cluster_size_for(const PagedAttentionCudaParams& p) {
  static const bool on = !env_is("AURORA_DECODE_MMA_CLUSTER", '0');
  static const int min_cl = [] {
    const char* v = std::getenv("AURORA_DECODE_MMA_CLUSTER_MIN");
    return v ? std::atoi(v) : 4;
  }();
  const int mode = small_launch_mode();
  if (!on || p.num_tokens > kClusterAttentionAutoTokens || mode == 2 ||
      (mode != 1 && p.num_q_heads == p.num_kv_heads)) {
    return 0;
  }
  for (int cl = kMaxClusterRanges; cl >= 4 && cl >= min_cl; cl /= 2) {
    if (int64_t{p.num_tokens} * p.num_kv_heads * cl <= sm_count()) return cl;
  }
  return 0;
}

}  // namespace

bool decode_mma_attention_enabled() {
  static const bool on = !env_is("AURORA_DECODE_MMA_ATTENTION", '0');
  return on;
}

bool decode_mma_attention_small(const PagedAttentionCudaParams& p) {
  const int mode = small_launch_mode();
  return decode_mma_attention_enabled() && p.num_tokens <= kClusterAttentionAutoTokens &&
         (mode >= 1 || (mode < 0 && (p.num_q_heads == p.num_kv_heads || cluster_size_for(p) > 0))) &&
         decode_mma_attention_supports(p);
}

bool decode_mma_attention_supports(const PagedAttentionCudaParams& p) {
  return p.kv_dtype == DType::kBF16 && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_q_heads % p.num_kv_heads == 0 && p.num_q_heads / p.num_kv_heads <= 16 && p.num_kv_heads <= 65535 &&
         p.num_tokens <= 65535 && p.block_size > 0 && (p.out_dtype == DType::kBF16 || p.out_dtype == DType::kF32) &&
         (p.decode_mma_range == 0 ||
          (p.decode_mma_range >= kStepKeys * kWarps && p.decode_mma_range % (kStepKeys * kWarps) == 0));
}

int32_t decode_mma_attention_range_keys(const PagedAttentionCudaParams& p) {
  if (p.decode_mma_range > 0) return p.decode_mma_range;
  // AURORA_DECODE_MMA_SMALL_RANGE=N (a multiple of 64): the small launches' range, to compare.
  static const int32_t small = [] {
    const char* v = std::getenv("AURORA_DECODE_MMA_SMALL_RANGE");
    const int32_t n = v ? std::atoi(v) : 0;
    return n >= kStepKeys * kWarps && n % (kStepKeys * kWarps) == 0 ? n : kSmallRangeKeys;
  }();
  return p.num_tokens <= kClusterAttentionAutoTokens ? small : kRangeKeys;
}

int32_t decode_mma_attention_ranges(int32_t context, int32_t range_keys) {
  // The window's start rounded down to a step adds at most kStepKeys - 1 keys before the first.
  return ranges_for(std::max(context, 1) + kStepKeys - 1, range_keys);
}

void launch_decode_mma_attention(const PagedAttentionCudaParams& p, const DecodeAttentionWorkspace& wsp,
                                 cudaStream_t stream) {
  AURORA_KERNEL_CHECK(decode_mma_attention_supports(p),
                      "decode attention on tensor cores needs a bf16 cache, head_dim 64 or 128, <= 16 query heads "
                      "per kv head and a range of a multiple of 64 keys; got head_dim "
                          << p.head_dim << ", " << p.num_q_heads << " / " << p.num_kv_heads << " heads, range "
                          << p.decode_mma_range);
  AURORA_KERNEL_CHECK(p.decode_mma_cluster == -1 || p.decode_mma_cluster == 0 || p.decode_mma_cluster == 4 ||
                          p.decode_mma_cluster == 8 || p.decode_mma_cluster == 16,
                      "attention decode_mma_cluster must be -1, 0, 4, 8 or 16, got " << p.decode_mma_cluster);
  const int32_t context = p.positions_bound > 0 ? std::min(p.positions_bound, p.max_context) : p.max_context;
  const int32_t range_keys = decode_mma_attention_range_keys(p);
  const int32_t ranges = decode_mma_attention_ranges(context, range_keys);
  AURORA_KERNEL_CHECK(ranges == 1 || (ranges <= wsp.max_ranges && wsp.tickets && wsp.part_out && wsp.part_ml),
                      "decode attention on tensor cores: a context of " << context << " positions needs " << ranges
                                                                        << " ranges, the workspace holds "
                                                                        << wsp.max_ranges);
  // Small launches let o_proj launch after their wait, as the cluster kernel does (kEarlyOProj), and
  // merge their ranges in a cluster.
  const bool trigger_early = p.num_tokens <= kClusterAttentionAutoTokens && (early_launches() & kEarlyOProj) != 0;
  const int cl = p.decode_mma_cluster > 0 ? p.decode_mma_cluster : p.decode_mma_cluster == 0 ? cluster_size_for(p) : 0;
  if (cl > 0 && (p.head_dim == 64 ? launch_clustered_hd<64>(p, cl, range_keys, trigger_early, stream)
                                  : launch_clustered_hd<128>(p, cl, range_keys, trigger_early, stream))) {
    return;
  }
  if (p.head_dim == 64) {
    launch_hd<64>(p, wsp, ranges, range_keys, trigger_early, stream);
  } else {
    launch_hd<128>(p, wsp, ranges, range_keys, trigger_early, stream);
  }
}

}  // namespace aurora::kernels::cuda::detail

namespace aurora::kernels::cuda {

void set_small_decode_attention(int mode) { detail::small_launch_mode() = mode < 0 ? -1 : mode > 2 ? 2 : mode; }

}  // namespace aurora::kernels::cuda
