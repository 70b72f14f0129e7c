// regroup_by_key: items sorted by expert, regrouped by a placement's keys, equal a stable counting
// sort by key of the original items; item_position is the inverse permutation.
#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <random>

#include "aurora/kernels/moe_exchange.hpp"
#include "aurora/kernels/moe_permute.hpp"

using namespace aurora::kernels;

TEST_CASE("regroup_by_key equals a stable sort of the items by key", "[kernels][moe]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const int32_t E = 1 + static_cast<int32_t>(rng() % 40), items = static_cast<int32_t>(rng() % 300);
    std::vector<int32_t> expert(static_cast<size_t>(items));
    for (auto& e : expert) e = static_cast<int32_t>(rng() % static_cast<uint32_t>(E));
    std::vector<int32_t> key_of(static_cast<size_t>(E)), expert_of(static_cast<size_t>(E));
    std::iota(key_of.begin(), key_of.end(), 0);
    std::shuffle(key_of.begin(), key_of.end(), rng);
    for (int32_t e = 0; e < E; ++e) expert_of[static_cast<size_t>(key_of[static_cast<size_t>(e)])] = e;
    // Sorted by expert (as the router leaves them).
    std::vector<int32_t> eoff(static_cast<size_t>(E) + 1), eperm(static_cast<size_t>(items)),
        epos(static_cast<size_t>(items));
    cpu::permute(PermuteParams{expert.data(), items, E, eoff.data(), eperm.data(), epos.data()});
    std::vector<int32_t> koff(static_cast<size_t>(E) + 1, -7), kperm(static_cast<size_t>(items), -7),
        kpos(static_cast<size_t>(items), -7);
    cpu::regroup_by_key(RegroupByKeyParams{eoff.data(), eperm.data(), key_of.data(), expert_of.data(), E, items,
                                           koff.data(), kperm.data(), kpos.data()});
    // Reference: stable counting sort by key directly.
    std::vector<int32_t> keys(static_cast<size_t>(items));
    for (int32_t i = 0; i < items; ++i)
      keys[static_cast<size_t>(i)] = key_of[static_cast<size_t>(expert[static_cast<size_t>(i)])];
    std::vector<int32_t> roff(static_cast<size_t>(E) + 1), rperm(static_cast<size_t>(items)),
        rpos(static_cast<size_t>(items));
    cpu::permute(PermuteParams{keys.data(), items, E, roff.data(), rperm.data(), rpos.data()});
    CHECK(koff == roff);
    CHECK(kperm == rperm);
    CHECK(kpos == rpos);
  }
}
