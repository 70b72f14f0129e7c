#include "aurora/kernels/moe_permute.hpp"

#include <algorithm>
#include <cstring>

#include "aurora/kernels/kernel_check.hpp"

namespace aurora::kernels::cpu {

void permute(const PermuteParams& p) {
  std::fill(p.key_offsets, p.key_offsets + p.num_keys + 1, 0);
  for (int32_t i = 0; i < p.num_items; ++i) {
    AURORA_KERNEL_CHECK(p.keys[i] >= 0 && p.keys[i] < p.num_keys, "permute key " << p.keys[i] << " out of range");
    ++p.key_offsets[p.keys[i] + 1];
  }
  for (int32_t k = 0; k < p.num_keys; ++k) p.key_offsets[k + 1] += p.key_offsets[k];
  // Stable placement, using the offsets as running cursors (restored below).
  for (int32_t i = 0; i < p.num_items; ++i) {
    const int32_t pos = p.key_offsets[p.keys[i]]++;
    p.permuted_item[pos] = i;
    p.item_position[i] = pos;
  }
  // Restore the offsets (each was advanced by its key's count).
  for (int32_t k = p.num_keys; k > 0; --k) p.key_offsets[k] = p.key_offsets[k - 1];
  p.key_offsets[0] = 0;
}

void gather_rows(const GatherRowsParams& p) {
  const int64_t src_stride = p.src_stride ? p.src_stride : p.row_floats;
  const int64_t dst_stride = p.dst_stride ? p.dst_stride : p.row_floats;
  for (int32_t r = 0; r < p.num_rows; ++r) {
    std::memcpy(p.dst + r * dst_stride, p.src + p.rows[r] * src_stride,
                static_cast<size_t>(p.row_floats) * sizeof(float));
  }
}

void combine(const CombineParams& p) {
  constexpr int32_t kMaxTopK = 64;
  AURORA_KERNEL_CHECK(p.top_k >= 1 && p.top_k <= kMaxTopK, "");
  const int64_t stride = p.expert_out_stride ? p.expert_out_stride : p.hidden;
  int32_t order[kMaxTopK];
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int32_t* ids = p.topk_ids + int64_t{t} * p.top_k;
    for (int32_t j = 0; j < p.top_k; ++j) order[j] = j;
    std::sort(order, order + p.top_k, [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
    float* out = p.out + int64_t{t} * p.hidden;
    std::fill(out, out + p.hidden, 0.0f);
    for (int32_t n = 0; n < p.top_k; ++n) {
      const int32_t j = order[n];
      const int64_t item = int64_t{t} * p.top_k + j;
      const float w = p.topk_weights[item];
      const float* row = p.expert_out + int64_t{p.item_position[item]} * stride;
      for (int32_t h = 0; h < p.hidden; ++h) out[h] += row[h] * w;
    }
  }
}

}  // namespace aurora::kernels::cpu
