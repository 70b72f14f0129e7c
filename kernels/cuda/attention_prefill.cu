// Prefill attention on tensor cores (flash attention over the paged bf16 KV cache).
//
// One block of 4 warps per (query tile, query head); a tile is up to 64 consecutive positions of one
// sequence (a prefill chunk cut by the runner), each warp owns 16 query rows. The block walks the
// keys the tile needs (causal, sliding window) 64 at a time: K and V rows are gathered from their
// cache blocks into shared memory with asynchronous copies (two stages: the next block's rows load
// while this one computes), S = Q K^T and O += P V run as mma.m16n8k16 bf16 products with float32
// accumulation, and the softmax is the online one (running max and sum per row, in registers).
// Queries are rounded to bf16 (as every tensor-core attention does); scores, softmax and sums are
// float32.
#include <cuda_bf16.h>

#include <cstdlib>

#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/kernel_check.hpp"
#include "device_utils.cuh"
#include "flash_step.cuh"
#include "mma.cuh"

namespace aurora::kernels::cuda {
namespace {

constexpr int kRows = kPrefillTileTokens;  // query rows per block
constexpr int kKeys = 64;                  // keys per step
constexpr int kWarps = kRows / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;  // bf16 elements of row padding: ldmatrix rows fall in distinct banks

template <int HD>
constexpr size_t prefill_smem_bytes() {
  return sizeof(bf16) * size_t(kRows + 2 * 2 * kKeys) * (HD + kPad);  // Q, then K and V in two stages
}

using detail::cp_async16_zfill;
using detail::ldmatrix_x4;
using detail::ldmatrix_x4_trans;
using detail::mma_16816;
using detail::pack_bf16;
using detail::smem_addr;

template <int HD>
__global__ void __launch_bounds__(kThreads, 2)
    prefill_attention_kernel(PagedAttentionCudaParams p, const int32_t* tiles, float scale_log2) {
  constexpr int kRow = HD + kPad;  // shared-memory row stride (elements)
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sq = reinterpret_cast<bf16*>(smem_raw);  // [kRows][kRow]
  bf16* skv = sq + kRows * kRow;                 // [stage][K, V][kKeys][kRow]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, q4 = lane & 3;
  const int head = blockIdx.y;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int kvh = head / group;

  detail::pdl_wait();  // q and the chunk's own K/V rows come from the prologue
  const int32_t first = tiles[2 * blockIdx.x], count = tiles[2 * blockIdx.x + 1];
  const int32_t pos0 = p.token_pos[first];
  const int32_t* table = p.block_tables + int64_t{p.token_seq[first]} * p.max_blocks_per_seq;
  const int32_t key_lo = p.sliding_window > 0 ? max(0, pos0 - p.sliding_window + 1) : 0;
  // Key steps start at a multiple of kKeys (not at the tile's first key), so that a row meets its
  // keys in the same steps whatever tile of its chunk it falls in: the same bits for any cut.
  const int32_t key_base = key_lo / kKeys * kKeys;
  const int32_t key_hi = pos0 + count;  // exclusive
  const int32_t steps = (key_hi - key_base + kKeys - 1) / kKeys;
  const int64_t kv_row = int64_t{p.num_kv_heads} * HD;
  const bf16* k_cache = static_cast<const bf16*>(p.k_cache);
  const bf16* v_cache = static_cast<const bf16*>(p.v_cache);

  auto load_kv = [&](int step, int stage) {
    bf16* sk = skv + stage * 2 * kKeys * kRow;
    bf16* sv = sk + kKeys * kRow;
    const int32_t k0 = key_base + step * kKeys;
    for (int c = threadIdx.x; c < kKeys * kChunks; c += kThreads) {
      const int r = c / kChunks, col = (c % kChunks) * 8;
      const int32_t kp = k0 + r;
      const bool valid = kp >= key_lo && kp < key_hi;  // keys outside are masked for every row
      int64_t off = 0;
      if (valid) {
        const int64_t slot = int64_t{table[kp / p.block_size]} * p.block_size + kp % p.block_size;
        off = slot * kv_row + int64_t{kvh} * HD + col;
      }
      cp_async16_zfill(sk + r * kRow + col, k_cache + off, valid);
      cp_async16_zfill(sv + r * kRow + col, v_cache + off, valid);
    }
    detail::cp_async_commit();
  };
  load_kv(0, 0);

  // The tile's queries as bf16 rows (rows past `count` are zeros and are not stored).
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    uint4 packed = make_uint4(0, 0, 0, 0);
    if (r < count) {
      const float* src = p.q + (int64_t{first + r} * p.num_q_heads + head) * HD + col;
      const float4 a = *reinterpret_cast<const float4*>(src);
      const float4 b = *reinterpret_cast<const float4*>(src + 4);
      packed = make_uint4(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w), pack_bf16(b.x, b.y), pack_bf16(b.z, b.w));
    }
    *reinterpret_cast<uint4*>(sq + r * kRow + col) = packed;
  }
  __syncthreads();
  // This warp's 16 query rows as mma A fragments, one per 16 dims.
  uint32_t qf[HD / 16][4];
  const int wr0 = warp * 16;
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks) {
    const bf16* src = sq + (wr0 + (lane & 15)) * kRow + ks * 16 + (lane >> 4) * 8;
    ldmatrix_x4(smem_addr(src), qf[ks][0], qf[ks][1], qf[ks][2], qf[ks][3]);
  }
  // Rows g and g + 8 of this warp: their positions (rows past count attend like the last row).
  const int32_t qpos0 = pos0 + min(wr0 + g, count - 1), qpos1 = pos0 + min(wr0 + g + 8, count - 1);
  const int32_t lo0 = p.sliding_window > 0 ? qpos0 - p.sliding_window + 1 : 0;
  const int32_t lo1 = p.sliding_window > 0 ? qpos1 - p.sliding_window + 1 : 0;
  const int32_t warp_hi = pos0 + min(wr0 + 15, count - 1);  // the warp's last position
  const int32_t warp_lo = p.sliding_window > 0 ? pos0 + min(wr0, count - 1) - p.sliding_window + 1 : 0;

  float o[HD / 8][4];
#pragma unroll
  for (int i = 0; i < HD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    if (step + 1 < steps) {
      load_kv(step + 1, stage ^ 1);
      detail::cp_async_wait<1>();
    } else {
      detail::cp_async_wait<0>();
    }
    __syncthreads();
    const int32_t k0 = key_base + step * kKeys;
    // Warps whose rows see none of these keys (or that hold no query row) skip them (warp-uniform).
    if (wr0 < count && k0 <= warp_hi && k0 + kKeys - 1 >= warp_lo) {
      const bf16* sk = skv + stage * 2 * kKeys * kRow;
      const bf16* sv = sk + kKeys * kRow;
      float s[kKeys / 8][4];
      detail::flash_scores<HD>(s, qf, sk, kRow, lane);
      // Scale, mask (causal, window, keys past the chunk).
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int32_t kp = k0 + nt * 8 + 2 * q4 + j;
          s[nt][j] = (kp <= qpos0 && kp >= lo0) ? s[nt][j] * scale_log2 : -INFINITY;
          s[nt][2 + j] = (kp <= qpos1 && kp >= lo1) ? s[nt][2 + j] * scale_log2 : -INFINITY;
        }
      }
      detail::flash_softmax(s, m0, m1, l0, l1, o);
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) detail::flash_pv<HD>(o, s, kk, sv, kRow, lane);
    }
    __syncthreads();  // the next step's loads overwrite the stage just read
  }
  detail::pdl_launch_dependents();

  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
  const int r0 = wr0 + g, r1 = wr0 + g + 8;
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int d = dt * 8 + 2 * q4;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = half ? r1 : r0;
      if (r >= count) continue;
      const float inv = half ? inv1 : inv0;
      const float v0 = o[dt][2 * half] * inv, v1 = o[dt][2 * half + 1] * inv;
      const int64_t at = (int64_t{first + r} * p.num_q_heads + head) * HD + d;
      if (p.out_dtype == DType::kBF16) {
        *reinterpret_cast<uint32_t*>(static_cast<bf16*>(p.out) + at) = pack_bf16(v0, v1);
      } else {
        *reinterpret_cast<float2*>(static_cast<float*>(p.out) + at) = make_float2(v0, v1);
      }
    }
  }
}

template <int HD>
void launch_hd(const PagedAttentionCudaParams& p, const int32_t* tiles, int32_t num_tiles, cudaStream_t stream) {
  constexpr size_t smem = prefill_smem_bytes<HD>();
  ensure_dynamic_smem(reinterpret_cast<const void*>(prefill_attention_kernel<HD>), smem);
  const float scale_log2 = p.scale * 1.4426950408889634f;
  launch_pdl(prefill_attention_kernel<HD>, dim3(static_cast<unsigned>(num_tiles), static_cast<unsigned>(p.num_q_heads)),
             dim3(kThreads), smem, stream, p, tiles, scale_log2);
}

}  // namespace

bool prefill_attention_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_FLASH_ATTENTION");
    return !(v && v[0] == '0');
  }();
  return on;
}

bool prefill_attention_supports(const PagedAttentionCudaParams& p) {
  return p.kv_dtype == DType::kBF16 && (p.head_dim == 64 || p.head_dim == 128) && p.num_kv_heads > 0 &&
         p.num_q_heads % p.num_kv_heads == 0 && p.num_q_heads <= 65535 &&
         (p.out_dtype == DType::kBF16 || p.out_dtype == DType::kF32);
}

void launch_prefill_attention(const PagedAttentionCudaParams& p, const int32_t* tiles, int32_t num_tiles,
                              cudaStream_t stream) {
  if (num_tiles == 0) return;
  AURORA_KERNEL_CHECK(prefill_attention_supports(p),
                      "prefill attention needs a bf16 cache and head_dim 64 or 128, got " << p.head_dim);
  AURORA_KERNEL_CHECK(p.block_size > 0 && p.max_blocks_per_seq > 0, "prefill attention needs block tables");
  if (p.head_dim == 64) {
    launch_hd<64>(p, tiles, num_tiles, stream);
  } else {
    launch_hd<128>(p, tiles, num_tiles, stream);
  }
}

}  // namespace aurora::kernels::cuda
