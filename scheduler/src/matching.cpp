#include "aurora/scheduler/matching.hpp"

#include <algorithm>
#include <limits>

#include "aurora/config/check.hpp"

namespace aurora::sched {
namespace {

// Hopcroft-Karp on a dense adjacency matrix.
class HopcroftKarp {
 public:
  HopcroftKarp(int n, std::vector<char> adj) : n_(n), adj_(std::move(adj)) {}

  std::vector<int32_t> run() {
    match_l_.assign(static_cast<size_t>(n_), -1);
    match_r_.assign(static_cast<size_t>(n_), -1);
    dist_.assign(static_cast<size_t>(n_), 0);
    while (bfs())
      for (int u = 0; u < n_; ++u)
        if (match_l_[static_cast<size_t>(u)] < 0) dfs(u);
    return match_l_;
  }

 private:
  static constexpr int kInf = std::numeric_limits<int>::max();

  bool bfs() {
    std::vector<int> queue;
    for (int u = 0; u < n_; ++u) {
      if (match_l_[static_cast<size_t>(u)] < 0) {
        dist_[static_cast<size_t>(u)] = 0;
        queue.push_back(u);
      } else {
        dist_[static_cast<size_t>(u)] = kInf;
      }
    }
    bool found = false;
    for (size_t head = 0; head < queue.size(); ++head) {
      const int u = queue[head];
      for (int v = 0; v < n_; ++v) {
        if (!adj_[static_cast<size_t>(u) * n_ + v]) continue;
        const int w = match_r_[static_cast<size_t>(v)];
        if (w < 0) {
          found = true;
        } else if (dist_[static_cast<size_t>(w)] == kInf) {
          dist_[static_cast<size_t>(w)] = dist_[static_cast<size_t>(u)] + 1;
          queue.push_back(w);
        }
      }
    }
    return found;
  }

  bool dfs(int u) {
    for (int v = 0; v < n_; ++v) {
      if (!adj_[static_cast<size_t>(u) * n_ + v]) continue;
      const int w = match_r_[static_cast<size_t>(v)];
      if (w < 0 || (dist_[static_cast<size_t>(w)] == dist_[static_cast<size_t>(u)] + 1 && dfs(w))) {
        match_l_[static_cast<size_t>(u)] = v;
        match_r_[static_cast<size_t>(v)] = u;
        return true;
      }
    }
    dist_[static_cast<size_t>(u)] = kInf;
    return false;
  }

  int n_;
  std::vector<char> adj_;
  std::vector<int32_t> match_l_, match_r_;
  std::vector<int> dist_;
};

}  // namespace

std::vector<int32_t> hopcroft_karp(int n, const std::function<bool(int, int)>& allowed) {
  std::vector<char> adj(static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) adj[static_cast<size_t>(i) * n + j] = allowed(i, j) ? 1 : 0;
  return HopcroftKarp(n, std::move(adj)).run();
}

BottleneckMatching bottleneck_perfect_matching(const std::vector<double>& weight, int n) {
  AURORA_CHECK(weight.size() == static_cast<size_t>(n) * n);
  BottleneckMatching out;
  if (n == 0) return out;
  std::vector<double> levels(weight);
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  auto try_level = [&](double w) {
    std::vector<char> adj(static_cast<size_t>(n) * n);
    for (size_t k = 0; k < adj.size(); ++k) adj[k] = weight[k] <= w ? 1 : 0;
    std::vector<int32_t> m = HopcroftKarp(n, std::move(adj)).run();
    const bool perfect = std::all_of(m.begin(), m.end(), [](int32_t v) { return v >= 0; });
    return std::make_pair(perfect, std::move(m));
  };
  // The largest weight always admits a perfect matching (complete graph).
  size_t lo = 0, hi = levels.size() - 1;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (try_level(levels[mid]).first)
      hi = mid;
    else
      lo = mid + 1;
  }
  auto [ok, m] = try_level(levels[lo]);
  AURORA_CHECK(ok);
  out.right_of_left = std::move(m);
  out.bottleneck = levels[lo];
  return out;
}

}  // namespace aurora::sched
