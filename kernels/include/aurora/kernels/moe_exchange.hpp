// Expert-parallel exchange layout: regroup a batch's (token, choice) items, already sorted by
// expert id, into the order of a placement's keys (experts listed rank by rank), so that the
// items bound for each rank form one contiguous range of the dispatch buffer.
//
// Contract: stable (inside one expert the items keep their order); the key of expert e is
// key_of_expert[e], a permutation of [0, num_experts). item_position is rewritten for every item,
// so the combine finds each item's output row in the regrouped order. No allocation.
#pragma once

#include <cstdint>

namespace aurora::kernels {

struct RegroupByKeyParams {
  const int32_t* expert_offsets = nullptr;  // [num_experts + 1]: items of expert e, sorted by expert
  const int32_t* permuted_item = nullptr;   // [num_items]: item at each expert-sorted position
  const int32_t* key_of_expert = nullptr;   // [num_experts]
  const int32_t* expert_of_key = nullptr;   // [num_experts]: the inverse permutation
  int32_t num_experts = 0;
  int32_t num_items = 0;
  int32_t* key_offsets = nullptr;        // out [num_experts + 1]: items of key k
  int32_t* key_permuted_item = nullptr;  // out [num_items]: item at each key-sorted position
  int32_t* item_position = nullptr;      // out [num_items]: key-sorted position of each item
};

namespace cpu {
void regroup_by_key(const RegroupByKeyParams& params);
}  // namespace cpu

}  // namespace aurora::kernels
