#include "aurora/kernels/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "aurora/kernels/kernel_check.hpp"
#include "dot_rows.hpp"

namespace aurora::kernels::cpu {

void write_kv_cache(const KvCacheWriteParams& p) {
  const int64_t row = int64_t{p.num_kv_heads} * p.head_dim;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    std::memcpy(p.k_cache + slot * row, p.k + t * row, static_cast<size_t>(row) * sizeof(float));
    std::memcpy(p.v_cache + slot * row, p.v + t * row, static_cast<size_t>(row) * sizeof(float));
  }
}

void paged_attention(const PagedAttentionParams& p, float* scores, int64_t workspace_floats) {
  AURORA_KERNEL_CHECK(p.num_q_heads % p.num_kv_heads == 0, "");
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t kv_row = int64_t{p.num_kv_heads} * p.head_dim;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int32_t pos = p.token_pos[t];
    const int32_t start = p.sliding_window > 0 ? std::max(0, pos - p.sliding_window + 1) : 0;
    const int32_t count = pos - start + 1;
    AURORA_KERNEL_CHECK(count <= workspace_floats,
                        "attention workspace too small: " << count << " > " << workspace_floats);
    const int32_t* table = p.block_tables + int64_t{p.token_seq[t]} * p.max_blocks_per_seq;
    for (int32_t h = 0; h < p.num_q_heads; ++h) {
      const int32_t kvh = h / group;
      const float* q = p.q + (int64_t{t} * p.num_q_heads + h) * p.head_dim;
      float max_score = -INFINITY;
      for (int32_t j = 0; j < count; ++j) {
        const int32_t position = start + j;
        const int64_t slot = int64_t{table[position / p.block_size]} * p.block_size + position % p.block_size;
        const float s = detail::dot_one(q, p.k_cache + slot * kv_row + int64_t{kvh} * p.head_dim, p.head_dim) * p.scale;
        scores[j] = s;
        max_score = std::max(max_score, s);
      }
      float sum = 0.0f;
      for (int32_t j = 0; j < count; ++j) {
        scores[j] = std::exp(scores[j] - max_score);
        sum += scores[j];
      }
      const float inv_sum = 1.0f / sum;
      float* out = p.out + (int64_t{t} * p.num_q_heads + h) * p.head_dim;
      std::fill(out, out + p.head_dim, 0.0f);
      for (int32_t j = 0; j < count; ++j) {
        const int32_t position = start + j;
        const int64_t slot = int64_t{table[position / p.block_size]} * p.block_size + position % p.block_size;
        const float* v = p.v_cache + slot * kv_row + int64_t{kvh} * p.head_dim;
        const float w = scores[j] * inv_sum;
        for (int32_t d = 0; d < p.head_dim; ++d) out[d] += w * v[d];
      }
    }
  }
}

}  // namespace aurora::kernels::cpu
