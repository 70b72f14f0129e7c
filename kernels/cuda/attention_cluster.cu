// Paged attention for bf16 caches, one thread-block cluster per (token, kv head): see attention_cluster.cuh.
//
// The context [start, pos] of a token is cut into at most CL equal ranges of at least kMinPerBlock
// positions (a function of the position alone); block b of the cluster takes range b, staged through
// shared memory in chunks of kCP positions (16-byte asynchronous copies, the next chunk's copies in
// flight while the current one is used), with an online softmax across its chunks. The blocks then
// meet through distributed shared memory: each reads every active block's (max, sum) per head and
// merges a slice of the output elements, summing the blocks in rank order. No workspace, no ticket,
// no serialising last block, and the grid does not depend on the longest context of the batch.
#include <cooperative_groups.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "attention_cluster.cuh"
#include "device_utils.cuh"

namespace aurora::kernels::cuda::detail {
namespace {
namespace cg = cooperative_groups;

constexpr int kNT = 256;               // threads per block
constexpr int kCP = 64;                // positions per staged chunk
constexpr int kTPP = kNT / kCP;        // threads per position in the score phase
constexpr int kMinPerBlock = 32;       // short contexts use fewer blocks of the cluster
constexpr int kMaxItemsPerThread = 2;  // value phase: (head, 8-dim chunk) items per thread
static_assert(kTPP == 4, "the score phase reduces over 4 adjacent lanes");
static_assert(kAttentionMaxGroup * (kAttentionMaxHeadDim / 8) <= kMaxItemsPerThread * kNT, "value items");
static_assert(kAttentionMaxGroup * 16 <= kNT, "the merge reads one (block, head) statistic per thread");

// Shared-memory layout, the same on host and device: K chunks [2][kCP][row], V chunks [2][kCP][row]
// (bf16, row = head_dim + 8: no bank conflicts), q [group][hd] (then the block's o), scores
// [group][kCP], the value phase's partial sums (inside the K/V buffers when they fit).
struct ClusterLayout {
  int row;
  size_t k_off, v_off, q_off, s_off, r_off, bytes;
};
__host__ __device__ inline ClusterLayout cluster_layout(int hd, int group) {
  ClusterLayout l{};
  l.row = hd + 8;
  const size_t buf = size_t(kCP) * size_t(l.row) * 2;
  const size_t red = size_t(kNT) * kMaxItemsPerThread * 8 * 4;
  l.k_off = 0;
  l.v_off = 2 * buf;
  l.q_off = 4 * buf;
  l.s_off = l.q_off + size_t(group) * hd * 4;
  const size_t end = l.s_off + size_t(group) * kCP * 4;
  l.r_off = red <= 4 * buf ? 0 : end;
  l.bytes = red <= 4 * buf ? end : end + red;
  return l;
}

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

template <int CL>
__global__ void __launch_bounds__(kNT) cluster_attention_kernel(PagedAttentionCudaParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ int32_t slots[2][kCP];
  __shared__ float m_run[kAttentionMaxGroup], l_run[kAttentionMaxGroup], alpha[kAttentionMaxGroup];
  __shared__ float wts[CL][kAttentionMaxGroup];
  __shared__ float l_all[kAttentionMaxGroup];
  cg::cluster_group cluster = cg::this_cluster();
  const int32_t b = static_cast<int32_t>(cluster.block_rank());
  const int32_t t = blockIdx.z, g = blockIdx.y, tid = threadIdx.x;
  const int32_t hd = p.head_dim, group = p.num_q_heads / p.num_kv_heads, cpr = hd / 8;
  // Positions, block tables and slots are step inputs (no kernel writes them): read before the wait.
  const int32_t pos = p.token_pos[t];
  const int32_t start = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int32_t len = pos - start + 1;
  const int32_t per = max(kMinPerBlock, (len + CL - 1) / CL);
  const int32_t active = (len + per - 1) / per;  // blocks with positions: 0 .. active-1
  const int32_t b0 = start + b * per;
  const int32_t nb = b < active ? min(per, pos + 1 - b0) : 0;
  const int32_t nch = (nb + kCP - 1) / kCP;
  const ClusterLayout L = cluster_layout(hd, group);
  bf16* ks = reinterpret_cast<bf16*>(smem_raw + L.k_off);
  bf16* vs = reinterpret_cast<bf16*>(smem_raw + L.v_off);
  float* qs = reinterpret_cast<float*>(smem_raw + L.q_off);
  float* sc = reinterpret_cast<float*>(smem_raw + L.s_off);
  float* red = reinterpret_cast<float*>(smem_raw + L.r_off);
  const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
  const int64_t slot_stride = int64_t{p.num_kv_heads} * hd;
  const int64_t q_base = (int64_t{t} * p.num_q_heads + int64_t{g} * group) * hd;
  const int32_t bs = p.block_size;
  if (tid < min(nb, kCP)) {
    const int32_t position = b0 + tid;
    slots[0][tid] = table[position / bs] * bs + position % bs;
  }
  if (tid < group) {
    m_run[tid] = -INFINITY;
    l_run[tid] = 0.0f;
  }
  pdl_wait();

  // Value phase: thread -> items (head, 8-dim chunk) and a split of the chunk's positions.
  const int32_t items = group * cpr;
  const int32_t splits = items >= kNT ? 1 : kNT / items;
  const int32_t split = items >= kNT ? 0 : tid / items;
  int32_t item[kMaxItemsPerThread];
  item[0] = items >= kNT ? tid : (split < splits ? tid - split * items : -1);
  item[1] = items >= kNT && tid + kNT < items ? tid + kNT : -1;
  float acc[kMaxItemsPerThread][8];
#pragma unroll
  for (int k = 0; k < kMaxItemsPerThread; ++k)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[k][e] = 0.0f;

  const bf16* kbase = static_cast<const bf16*>(p.k_cache) + int64_t{g} * hd;
  const bf16* vbase = static_cast<const bf16*>(p.v_cache) + int64_t{g} * hd;
  const int32_t chunk_elems = kCP * L.row;
  auto issue = [&](int32_t chunk, int32_t buf) {  // two commit groups: K rows, then V rows
    const int32_t n = min(kCP, nb - chunk * kCP);
    for (int32_t i = tid; i < n * cpr; i += kNT) {
      const int32_t r = i / cpr, c = i - r * cpr;
      cp_async16(ks + buf * chunk_elems + r * L.row + 8 * c, kbase + int64_t{slots[buf][r]} * slot_stride + 8 * c);
    }
    cp_async_commit();
    for (int32_t i = tid; i < n * cpr; i += kNT) {
      const int32_t r = i / cpr, c = i - r * cpr;
      cp_async16(vs + buf * chunk_elems + r * L.row + 8 * c, vbase + int64_t{slots[buf][r]} * slot_stride + 8 * c);
    }
    cp_async_commit();
  };

  const int32_t lane = tid & 31, warp = tid >> 5;
  if (nb > 0) {
    for (int32_t i = tid; i < group * hd / 4; i += kNT) cp_async16(qs + 4 * i, p.q + q_base + 4 * i);
    __syncthreads();  // slots[0]
    issue(0, 0);      // q joins chunk 0's K group
    for (int32_t c = 0; c < nch; ++c) {
      const int32_t buf = c & 1, n = min(kCP, nb - c * kCP);
      const bool next = c + 1 < nch;
      if (next) {
        const int32_t j1 = b0 + (c + 1) * kCP;
        if (tid < min(kCP, nb - (c + 1) * kCP)) slots[buf ^ 1][tid] = table[(j1 + tid) / bs] * bs + (j1 + tid) % bs;
        __syncthreads();
        issue(c + 1, buf ^ 1);
        cp_async_wait<3>();  // K of chunk c (groups: K_c V_c K_c+1 V_c+1)
      } else {
        cp_async_wait<1>();
      }
      __syncthreads();

      // Scores: kTPP adjacent threads per position, 8-dim chunks interleaved, fixed-order sum.
      {
        const int32_t pl = tid / kTPP, qq = tid % kTPP;
        float s[kAttentionMaxGroup];
#pragma unroll
        for (int h = 0; h < kAttentionMaxGroup; ++h) s[h] = 0.0f;
        if (pl < n) {
          const bf16* krow = ks + buf * chunk_elems + pl * L.row;
          for (int32_t c8 = qq; c8 < cpr; c8 += kTPP) {
            float kf[8];
            load8(krow + 8 * c8, kf);
#pragma unroll
            for (int h = 0; h < kAttentionMaxGroup; ++h) {
              if (h < group) {
                const float4 a = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c8);
                const float4 d = *reinterpret_cast<const float4*>(qs + h * hd + 8 * c8 + 4);
                s[h] += a.x * kf[0] + a.y * kf[1] + a.z * kf[2] + a.w * kf[3] + d.x * kf[4] + d.y * kf[5] +
                        d.z * kf[6] + d.w * kf[7];
              }
            }
          }
        }
#pragma unroll
        for (int h = 0; h < kAttentionMaxGroup; ++h) {
          if (h < group) {
            s[h] += __shfl_xor_sync(0xffffffffu, s[h], 1);
            s[h] += __shfl_xor_sync(0xffffffffu, s[h], 2);
          }
        }
        if (pl < n && qq == 0) {
#pragma unroll
          for (int h = 0; h < kAttentionMaxGroup; ++h) {
            if (h < group) sc[h * kCP + pl] = s[h] * p.scale;
          }
        }
      }
      __syncthreads();

      // Online softmax over the chunks, one warp per head.
      for (int32_t h = warp; h < group; h += kNT / 32) {
        const float m_old = m_run[h];
        float mc = -INFINITY;
        for (int32_t j = lane; j < n; j += 32) mc = fmaxf(mc, sc[h * kCP + j]);
        mc = warp_max(mc);
        const float m_new = fmaxf(m_old, mc);
        float l = 0.0f;
        for (int32_t j = lane; j < n; j += 32) {
          const float e = expf(sc[h * kCP + j] - m_new);
          sc[h * kCP + j] = e;
          l += e;
        }
        l = warp_sum(l);
        if (lane == 0) {
          const float a = expf(m_old - m_new);
          alpha[h] = a;
          l_run[h] = l_run[h] * a + l;
          m_run[h] = m_new;
        }
      }
      if (next) {
        cp_async_wait<2>();  // V of chunk c
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();

      // Values: acc = acc * alpha + sum_j p_j V_j over this thread's split of the chunk.
      const bf16* vchunk = vs + buf * chunk_elems;
#pragma unroll
      for (int k = 0; k < kMaxItemsPerThread; ++k) {
        if (item[k] < 0) continue;
        const int32_t h = item[k] / cpr, cc = item[k] - h * cpr;
        const float a = alpha[h];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[k][e] *= a;
        for (int32_t j = split; j < n; j += splits) {
          const float w = sc[h * kCP + j];
          float vf[8];
          load8(vchunk + j * L.row + 8 * cc, vf);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[k][e] += w * vf[e];
        }
      }
      __syncthreads();  // the chunk's buffers, scores and alpha are free
    }
  }
  pdl_launch_dependents();  // late: only the merge remains

  // The block's o (relative to its own max) into the q region: splits summed in order.
  if (nb > 0) {
#pragma unroll
    for (int k = 0; k < kMaxItemsPerThread; ++k) {
      if (item[k] < 0) continue;
      float* r = red + (int64_t{split} * items + item[k]) * 8;
      *reinterpret_cast<float4*>(r) = make_float4(acc[k][0], acc[k][1], acc[k][2], acc[k][3]);
      *reinterpret_cast<float4*>(r + 4) = make_float4(acc[k][4], acc[k][5], acc[k][6], acc[k][7]);
    }
    __syncthreads();
    for (int32_t it = tid; it < items; it += kNT) {
      float o[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      for (int32_t s = 0; s < splits; ++s) {
        const float* r = red + (int64_t{s} * items + it) * 8;
#pragma unroll
        for (int e = 0; e < 8; ++e) o[e] += r[e];
      }
      const int32_t h = it / cpr, cc = it - h * cpr;
      float* dst = qs + h * hd + 8 * cc;
      *reinterpret_cast<float4*>(dst) = make_float4(o[0], o[1], o[2], o[3]);
      *reinterpret_cast<float4*>(dst + 4) = make_float4(o[4], o[5], o[6], o[7]);
    }
  }
  cluster.sync();  // every block's (m, l, o) is visible to the cluster

  // Merge: per head, the weight of each active block; then a slice of the outputs per block.
  if (tid < active * group) {
    const int32_t a = tid / group, h = tid - a * group;
    wts[a][h] = cluster.map_shared_rank(m_run, a)[h];
  }
  __syncthreads();
  if (tid < group) {
    float m = -INFINITY;
    for (int32_t a = 0; a < active; ++a) m = fmaxf(m, wts[a][tid]);
    float l = 0.0f;
    for (int32_t a = 0; a < active; ++a) {
      const float w = expf(wts[a][tid] - m);
      l += w * cluster.map_shared_rank(l_run, a)[tid];
      wts[a][tid] = w;
    }
    l_all[tid] = l;
  }
  __syncthreads();
  const int32_t e4_count = group * hd / 4;
  for (int32_t e4 = tid * CL + b; e4 < e4_count; e4 += kNT * CL) {
    const int32_t h = 4 * e4 / hd;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int32_t a = 0; a < active; ++a) {
      const float4 v = reinterpret_cast<const float4*>(cluster.map_shared_rank(qs, a))[e4];
      const float w = wts[a][h];
      o.x += w * v.x;
      o.y += w * v.y;
      o.z += w * v.z;
      o.w += w * v.w;
    }
    const float l = l_all[h];
    const int64_t i = q_base + 4 * int64_t{e4};
    store_from_float(p.out, p.out_dtype, i, o.x / l);
    store_from_float(p.out, p.out_dtype, i + 1, o.y / l);
    store_from_float(p.out, p.out_dtype, i + 2, o.z / l);
    store_from_float(p.out, p.out_dtype, i + 3, o.w / l);
  }
  cluster.sync();  // no block leaves while another reads its shared memory
}

template <int CL>
cudaError_t launch_cl(const PagedAttentionCudaParams& p, size_t smem, bool pdl, cudaStream_t stream) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(CL, static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(p.num_tokens));
  cfg.blockDim = dim3(kNT);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CL;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  return cudaLaunchKernelEx(&cfg, cluster_attention_kernel<CL>, p);
}

// Prepares cluster_attention_kernel<CL> on the current device and says how many of its clusters fit
// at once with `smem` bytes per block (0: none, or the device refuses).
template <int CL>
int active_clusters(size_t smem) {
  const void* k = reinterpret_cast<const void*>(cluster_attention_kernel<CL>);
  const size_t most = cluster_layout(kAttentionMaxHeadDim, kAttentionMaxGroup).bytes;
  if (cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(most)) != cudaSuccess ||
      (CL > 8 && cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess)) {
    (void)cudaGetLastError();
    return 0;
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(CL, 1, 1);
  cfg.blockDim = dim3(kNT);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CL;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int n = 0;
  if (cudaOccupancyMaxActiveClusters(&n, cluster_attention_kernel<CL>, &cfg) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

// The cluster size for this device and shared-memory size: 16 blocks where the device schedules
// them (Hopper), else 8, else 0 (no cluster kernel). Decided once per (device, bytes), before any
// graph capture (a graph's warm-up step launches first).
int cluster_size(size_t smem) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  static std::mutex mu;
  static std::map<std::pair<int, size_t>, int> chosen;
  std::lock_guard lock(mu);
  auto it = chosen.find({device, smem});
  if (it != chosen.end()) return it->second;
  int cl = 0;
  if (active_clusters<16>(smem) >= 4) {
    cl = 16;
  } else if (active_clusters<8>(smem) >= 4) {
    cl = 8;
  }
  chosen[{device, smem}] = cl;
  return cl;
}

}  // namespace

bool cluster_attention_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_CLUSTER_ATTENTION");
    return !(v && v[0] == '0') && !legacy_attention();
  }();
  return on;
}

bool launch_cluster_attention(const PagedAttentionCudaParams& p, cudaStream_t stream) {
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  if (p.num_tokens > 65535 || p.num_kv_heads > 65535) return false;
  const size_t smem = cluster_layout(p.head_dim, group).bytes;
  const int cl = cluster_size(smem);
  if (cl == 0) return false;
  // Programmatic dependent launch as launch_pdl_hinted decides for a decode-sized grid; a device
  // that refuses it together with clusters gets plain launches from then on.
  static bool pdl_refused = false;
  const int mode = pdl_mode();
  const bool small = int64_t{p.num_tokens} * p.num_kv_heads <= sm_count();
  const bool pdl = !pdl_refused && (mode == 1 || (mode >= 2 && small));
  auto launch = [&](bool with_pdl) {
    return cl == 16 ? launch_cl<16>(p, smem, with_pdl, stream) : launch_cl<8>(p, smem, with_pdl, stream);
  };
  cudaError_t err = launch(pdl);
  if (err != cudaSuccess && pdl) {
    (void)cudaGetLastError();
    pdl_refused = true;
    err = launch(false);
  }
  AURORA_CUDA_CHECK(err);
  return true;
}

}  // namespace aurora::kernels::cuda::detail
