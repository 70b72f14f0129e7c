// The attention tests' shared setup: a head shape over a paged cache, and the CPU twin's reference
// and the GPU parameters for a batch of tokens on it.
#pragma once

#include <cmath>
#include <vector>

#include "aurora/kernels/attention.hpp"
#include "aurora/kernels/cuda/attention.hpp"

namespace aurora::test {

struct AttentionGeometry {
  int32_t hq = 0, hkv = 0, hd = 0, window = 0;  // query heads, kv heads, head_dim, sliding window
  int32_t block_size = 16, max_blocks = 0;      // cache block size, block-table row length

  int32_t max_context() const { return max_blocks * block_size; }
  float scale() const { return 1.0f / std::sqrt(float(hd)); }

  // cpu::paged_attention of the tokens (seq, pos) over the caches k, v.
  std::vector<float> cpu_reference(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, const std::vector<int32_t>& tables,
                                   const std::vector<int32_t>& seq, const std::vector<int32_t>& pos) const {
    std::vector<float> want(q.size());
    kernels::PagedAttentionParams cp;
    cp.q = q.data();
    cp.out = want.data();
    cp.k_cache = k.data();
    cp.v_cache = v.data();
    cp.block_tables = tables.data();
    cp.token_seq = seq.data();
    cp.token_pos = pos.data();
    cp.num_tokens = int32_t(seq.size());
    cp.num_q_heads = hq;
    cp.num_kv_heads = hkv;
    cp.head_dim = hd;
    cp.block_size = block_size;
    cp.max_blocks_per_seq = max_blocks;
    cp.sliding_window = window;
    cp.scale = scale();
    std::vector<float> ws(static_cast<size_t>(max_context()));
    kernels::cpu::paged_attention(cp, ws.data(), max_context());
    return want;
  }

  // The GPU parameters for the same tokens (device pointers); the output is the caller's to set.
  kernels::cuda::PagedAttentionCudaParams gpu(const float* q, const void* k, const void* v, kernels::cuda::DType kv_dtype,
                                              const int32_t* tables, const int32_t* seq, const int32_t* pos,
                                              int32_t tokens) const {
    kernels::cuda::PagedAttentionCudaParams p;
    p.q = q;
    p.k_cache = k;
    p.v_cache = v;
    p.kv_dtype = kv_dtype;
    p.block_tables = tables;
    p.token_seq = seq;
    p.token_pos = pos;
    p.num_tokens = tokens;
    p.num_q_heads = hq;
    p.num_kv_heads = hkv;
    p.head_dim = hd;
    p.block_size = block_size;
    p.max_blocks_per_seq = max_blocks;
    p.sliding_window = window;
    p.max_context = max_context();
    p.scale = scale();
    return p;
  }
};

}  // namespace aurora::test
