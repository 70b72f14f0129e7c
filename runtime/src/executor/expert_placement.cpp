#include "executor/expert_placement.hpp"

namespace aurora::runtime {

Result<ExpertPlacement> make_placement(const std::vector<std::vector<int32_t>>& owners, int32_t num_ranks,
                                       int32_t num_experts) {
  ExpertPlacement p;
  p.num_ranks = num_ranks;
  p.num_experts = num_experts;
  p.layers.resize(owners.size());
  for (size_t l = 0; l < owners.size(); ++l) {
    const auto& owner = owners[l];
    if (owner.empty()) continue;
    const std::string field = "placement.layers[" + std::to_string(l) + "]";
    if (owner.size() != static_cast<size_t>(num_experts)) {
      return Error::invalid(
          field, "must list " + std::to_string(num_experts) + " experts, got " + std::to_string(owner.size()));
    }
    LayerPlacement& lp = p.layers[l];
    lp.owner = owner;
    lp.rank_experts.assign(static_cast<size_t>(num_ranks), {});
    lp.local_index.assign(static_cast<size_t>(num_experts), 0);
    for (int32_t e = 0; e < num_experts; ++e) {
      const int32_t r = owner[static_cast<size_t>(e)];
      if (r < 0 || r >= num_ranks) {
        return Error::invalid(field + "[" + std::to_string(e) + "]",
                              "rank must be in [0, " + std::to_string(num_ranks) + "), got " + std::to_string(r));
      }
      lp.local_index[static_cast<size_t>(e)] = static_cast<int32_t>(lp.rank_experts[static_cast<size_t>(r)].size());
      lp.rank_experts[static_cast<size_t>(r)].push_back(e);
    }
    lp.key.assign(static_cast<size_t>(num_experts), 0);
    lp.rank_offsets.assign(static_cast<size_t>(num_ranks) + 1, 0);
    int32_t next = 0;
    for (int32_t r = 0; r < num_ranks; ++r) {
      lp.rank_offsets[static_cast<size_t>(r)] = next;
      for (int32_t e : lp.rank_experts[static_cast<size_t>(r)]) lp.key[static_cast<size_t>(e)] = next++;
    }
    lp.rank_offsets[static_cast<size_t>(num_ranks)] = next;
  }
  return p;
}

ExpertPlacement contiguous_placement(const std::vector<bool>& layer_is_moe, int32_t num_experts, int32_t num_ranks) {
  std::vector<std::vector<int32_t>> owners(layer_is_moe.size());
  for (size_t l = 0; l < layer_is_moe.size(); ++l) {
    if (!layer_is_moe[l]) continue;
    owners[l].resize(static_cast<size_t>(num_experts));
    for (int32_t e = 0; e < num_experts; ++e) {
      owners[l][static_cast<size_t>(e)] = static_cast<int32_t>(int64_t{e} * num_ranks / num_experts);
    }
  }
  return std::move(make_placement(owners, num_ranks, num_experts).value());
}

int64_t count_migrations(const ExpertPlacement& from, const ExpertPlacement& to) {
  int64_t moved = 0;
  for (size_t l = 0; l < from.layers.size() && l < to.layers.size(); ++l) {
    const auto& a = from.layers[l].owner;
    const auto& b = to.layers[l].owner;
    for (size_t e = 0; e < a.size() && e < b.size(); ++e) moved += a[e] != b[e];
  }
  return moved;
}

}  // namespace aurora::runtime
