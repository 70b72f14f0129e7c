// Bipartite perfect matchings on n x n graphs: Hopcroft-Karp, and the bottleneck (min-max weight)
// perfect matching by threshold search over the sorted weights plus Hopcroft-Karp (Aurora §6.2).
// Pure functions, O(n^2.5) and O(n^2.5 log n). Deterministic.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace aurora::sched {

// allowed(i, j): may left vertex i be matched to right vertex j. Returns right_of_left (size n, -1 where
// unmatched) of a maximum matching.
std::vector<int32_t> hopcroft_karp(int n, const std::function<bool(int, int)>& allowed);

struct BottleneckMatching {
  std::vector<int32_t> right_of_left;  // a perfect matching
  double bottleneck = 0;               // its largest edge weight, the smallest possible
};

// weight: n x n row-major (left i, right j). Returns some perfect matching of minimum bottleneck (ties are
// not broken further; deployment refines them with its full cost model).
BottleneckMatching bottleneck_perfect_matching(const std::vector<double>& weight, int n);

}  // namespace aurora::sched
