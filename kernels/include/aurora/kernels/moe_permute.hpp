// Token permutation for expert parallelism: group the (token, choice) pairs of a batch by a
// destination key (expert, or rank then expert), gather their rows into that order, and combine
// expert outputs back into token order with their routing weights.
//
// Contract: the permutation is a stable counting sort, so rows with the same key keep token order
// and the layout is deterministic. combine() sums each token's choices in increasing expert id
// order, starting from zero (transformers' order), so its result does not depend on where the
// experts ran. No allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct PermuteParams {
  const int32_t* keys = nullptr;  // [num_items]: destination key in [0, num_keys)
  int32_t num_items = 0;          // tokens * top_k
  int32_t num_keys = 0;
  int32_t* key_offsets = nullptr;    // out [num_keys + 1]: items of key k are [off[k], off[k+1])
  int32_t* permuted_item = nullptr;  // out [num_items]: item at each permuted position
  int32_t* item_position = nullptr;  // out [num_items]: permuted position of each item
};

struct GatherRowsParams {
  const float* src = nullptr;     // [*, src_stride]
  const int32_t* rows = nullptr;  // [num_rows]: source row of each output row
  float* dst = nullptr;           // [num_rows, dst_stride]
  int32_t num_rows = 0;
  int32_t row_floats = 0;  // floats copied per row
  int64_t src_stride = 0;  // 0 = row_floats
  int64_t dst_stride = 0;  // 0 = row_floats
};

struct CombineParams {
  const float* expert_out = nullptr;       // [num_tokens * top_k, hidden] rows in item order, via position
  const int32_t* item_position = nullptr;  // [num_tokens * top_k]: row of expert_out for item t*top_k+j
  const int32_t* topk_ids = nullptr;       // [num_tokens, top_k]
  const float* topk_weights = nullptr;     // [num_tokens, top_k]
  float* out = nullptr;                    // [num_tokens, hidden]
  int32_t num_tokens = 0;
  int32_t top_k = 0;
  int32_t hidden = 0;
  int64_t expert_out_stride = 0;  // 0 = hidden
};

namespace cpu {
void permute(const PermuteParams& params);
void gather_rows(const GatherRowsParams& params);
void combine(const CombineParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
