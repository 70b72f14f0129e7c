// ExpertPlacement: which expert-parallel rank computes each expert of each MoE layer, and the
// derived layouts the dispatch needs (experts in rank-major order, each rank's local experts).
//
// Produced by the planner's placement function (or the contiguous fallback) and swapped between
// steps by the engine thread only; executors read it during a step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct LayerPlacement {
  std::vector<int32_t> owner;                      // [num_experts] -> rank
  std::vector<int32_t> key;                        // [num_experts] -> position in rank-major order
  std::vector<int32_t> rank_offsets;               // [num_ranks + 1]: keys of rank r are [off[r], off[r+1])
  std::vector<int32_t> local_index;                // [num_experts] -> index among its owner's experts
  std::vector<std::vector<int32_t>> rank_experts;  // [num_ranks] -> expert ids, increasing
};

struct ExpertPlacement {
  int32_t num_ranks = 1;
  int32_t num_experts = 0;
  std::vector<LayerPlacement> layers;  // [num_layers]; dense layers have an empty owner
  int64_t version = 0;
};

// Builds the derived layouts from owners; fails naming the layer/expert when an owner is invalid.
Result<ExpertPlacement> make_placement(const std::vector<std::vector<int32_t>>& owners, int32_t num_ranks,
                                       int32_t num_experts);
// Expert e of every MoE layer on rank e * num_ranks / num_experts.
ExpertPlacement contiguous_placement(const std::vector<bool>& layer_is_moe, int32_t num_experts, int32_t num_ranks);
// Number of (layer, expert) pairs whose owner differs.
int64_t count_migrations(const ExpertPlacement& from, const ExpertPlacement& to);

}  // namespace aurora::runtime
