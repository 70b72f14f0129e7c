#include "aurora/scheduler/placement.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

namespace aurora::sched {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Time one token costs GPU g: expert compute plus receiving it (dispatch) and sending it back (combine).
double seconds_per_token(const ExpertPlacementProblem& p, const GpuSpec& g) {
  return p.compute_s_per_token / g.compute_speed + p.bytes_per_token / g.recv_bytes_per_s +
         p.bytes_per_token / g.send_bytes_per_s;
}

Result<void> validate(const ExpertPlacementProblem& p, const Cluster& cluster) {
  if (cluster.gpus.empty()) return Error::invalid("gpus", "must not be empty");
  if (p.expert_tokens.empty()) return Error::invalid("expert_tokens", "must not be empty");
  for (size_t e = 0; e < p.expert_tokens.size(); ++e)
    if (!(p.expert_tokens[e] >= 0) || !std::isfinite(p.expert_tokens[e]))
      return Error::invalid("expert_tokens[" + std::to_string(e) + "]",
                            "must be >= 0, got " + std::to_string(p.expert_tokens[e]));
  if (!p.expert_memory_bytes.empty() && p.expert_memory_bytes.size() != p.expert_tokens.size())
    return Error::invalid("expert_memory_bytes", "must have " + std::to_string(p.expert_tokens.size()) +
                                                     " entries, got " + std::to_string(p.expert_memory_bytes.size()));
  for (size_t e = 0; e < p.expert_memory_bytes.size(); ++e)
    if (p.expert_memory_bytes[e] < 0)
      return Error::invalid("expert_memory_bytes[" + std::to_string(e) + "]",
                            "must be >= 0, got " + std::to_string(p.expert_memory_bytes[e]));
  if (p.max_replicas_per_expert < 1 || p.max_replicas_per_expert > cluster.num_gpus())
    return Error::invalid("max_replicas_per_expert", "must be in [1, " + std::to_string(cluster.num_gpus()) +
                                                         "], got " + std::to_string(p.max_replicas_per_expert));
  if (p.max_extra_replicas < 0)
    return Error::invalid("max_extra_replicas", "must be >= 0, got " + std::to_string(p.max_extra_replicas));
  if (p.bytes_per_token < 0 || p.compute_s_per_token < 0) return Error::invalid("compute_s_per_token", "must be >= 0");
  for (size_t g = 0; g < cluster.gpus.size(); ++g) {
    const GpuSpec& s = cluster.gpus[g];
    if (!(s.send_bytes_per_s > 0) || !(s.recv_bytes_per_s > 0) || !(s.compute_speed > 0))
      return Error::invalid("gpus[" + std::to_string(g) + "]", "bandwidths and compute_speed must be > 0");
  }
  return {};
}

struct Item {
  int32_t expert;
  double tokens;
  int64_t memory;
};

// Builds the result from item -> gpu, with per-expert shares equal across its replicas.
ExpertPlacement build(const ExpertPlacementProblem& p, const Cluster& cluster, const std::vector<Item>& items,
                      const std::vector<int32_t>& gpu_of_item) {
  const size_t E = p.expert_tokens.size();
  const size_t G = cluster.gpus.size();
  ExpertPlacement out;
  out.gpus_of_expert.assign(E, {});
  out.share_of_replica.assign(E, {});
  out.experts_of_gpu.assign(G, {});
  out.gpu_time_s.assign(G, 0.0);
  out.gpu_memory_bytes.assign(G, p.per_gpu_fixed_memory_bytes);
  for (size_t k = 0; k < items.size(); ++k) {
    const Item& it = items[k];
    const int32_t g = gpu_of_item[k];
    out.gpus_of_expert[static_cast<size_t>(it.expert)].push_back(g);
    out.experts_of_gpu[static_cast<size_t>(g)].push_back(it.expert);
    out.gpu_time_s[static_cast<size_t>(g)] += it.tokens * seconds_per_token(p, cluster.gpus[static_cast<size_t>(g)]);
    out.gpu_memory_bytes[static_cast<size_t>(g)] += it.memory;
  }
  for (size_t e = 0; e < E; ++e) {
    const size_t r = out.gpus_of_expert[e].size();
    out.share_of_replica[e].assign(r, 1.0 / static_cast<double>(r));
  }
  for (auto& v : out.experts_of_gpu) std::sort(v.begin(), v.end());
  out.max_gpu_time_s = *std::max_element(out.gpu_time_s.begin(), out.gpu_time_s.end());
  double total_tokens = std::accumulate(p.expert_tokens.begin(), p.expert_tokens.end(), 0.0);
  double capability = 0;
  for (const GpuSpec& g : cluster.gpus) capability += 1.0 / seconds_per_token(p, g);
  out.lower_bound_s = capability > 0 ? total_tokens / capability : 0;
  return out;
}

int64_t capacity_of(const ExpertPlacementProblem& p, const GpuSpec& g) {
  return g.memory_bytes > 0 ? g.memory_bytes - p.per_gpu_fixed_memory_bytes : std::numeric_limits<int64_t>::max();
}

Error does_not_fit(const Item& it) {
  return Error::invalid("expert_memory_bytes[" + std::to_string(it.expert) + "]",
                        "experts do not fit in GPU memory (no GPU has " + std::to_string(it.memory) + " bytes left)");
}

}  // namespace

Result<ExpertPlacement> place_experts(const ExpertPlacementProblem& p, const Cluster& cluster) {
  if (auto v = validate(p, cluster); !v) return v.error();
  const size_t E = p.expert_tokens.size();
  const size_t G = cluster.gpus.size();
  std::vector<double> spt(G);
  for (size_t g = 0; g < G; ++g) spt[g] = seconds_per_token(p, cluster.gpus[g]);
  const double best_spt = *std::min_element(spt.begin(), spt.end());
  double capability = 0;
  for (double s : spt) capability += 1.0 / s;
  const double total = std::accumulate(p.expert_tokens.begin(), p.expert_tokens.end(), 0.0);
  const double bound = total / capability;

  // Replicas: split the hottest expert while one replica of it alone would exceed the balanced bound.
  std::vector<int> replicas(E, 1);
  int budget = p.max_replicas_per_expert > 1 ? p.max_extra_replicas : 0;
  while (budget > 0) {
    size_t hot = E;
    double hot_load = 0;
    for (size_t e = 0; e < E; ++e) {
      const double per = p.expert_tokens[e] / replicas[e];
      if (replicas[e] < p.max_replicas_per_expert && per > hot_load) {
        hot_load = per;
        hot = e;
      }
    }
    if (hot == E || hot_load * best_spt <= bound * 1.0001) break;
    ++replicas[hot];
    --budget;
  }
  std::vector<Item> items;
  for (size_t e = 0; e < E; ++e) {
    const int64_t mem = p.expert_memory_bytes.empty() ? 0 : p.expert_memory_bytes[e];
    for (int r = 0; r < replicas[e]; ++r)
      items.push_back(Item{static_cast<int32_t>(e), p.expert_tokens[e] / replicas[e], mem});
  }
  // LPT on speed-scaled time, hottest first (ties: larger memory first), onto the GPU where it ends soonest.
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (items[a].tokens != items[b].tokens) return items[a].tokens > items[b].tokens;
    return items[a].memory > items[b].memory;
  });
  std::vector<double> load(G, 0.0);
  std::vector<int64_t> room(G);
  for (size_t g = 0; g < G; ++g) room[g] = capacity_of(p, cluster.gpus[g]);
  std::vector<int32_t> gpu_of(items.size(), -1);
  std::vector<std::vector<char>> holds(E, std::vector<char>(G, 0));
  for (size_t k : order) {
    const Item& it = items[k];
    int best = -1;
    double best_end = kInf;
    for (size_t g = 0; g < G; ++g) {
      if (room[g] < it.memory || holds[static_cast<size_t>(it.expert)][g]) continue;
      const double end = (load[g] + it.tokens) * spt[g];
      if (end < best_end || (end == best_end && best >= 0 && room[g] > room[static_cast<size_t>(best)])) {
        best_end = end;
        best = static_cast<int>(g);
      }
    }
    if (best < 0) return does_not_fit(it);
    gpu_of[k] = best;
    load[static_cast<size_t>(best)] += it.tokens;
    room[static_cast<size_t>(best)] -= it.memory;
    holds[static_cast<size_t>(it.expert)][static_cast<size_t>(best)] = 1;
  }
  // Local search: move or swap an item of the slowest GPU while that lowers the pair's maximum.
  auto time_of = [&](size_t g) { return load[g] * spt[g]; };
  for (int iter = 0; iter < 10000; ++iter) {
    size_t worst = 0;
    for (size_t g = 1; g < G; ++g)
      if (time_of(g) > time_of(worst)) worst = g;
    const double cur = time_of(worst);
    bool improved = false;
    for (size_t k = 0; k < items.size() && !improved; ++k) {
      if (static_cast<size_t>(gpu_of[k]) != worst) continue;
      const Item& it = items[k];
      for (size_t g = 0; g < G && !improved; ++g) {
        if (g == worst || holds[static_cast<size_t>(it.expert)][g]) continue;
        // Move.
        if (room[g] >= it.memory &&
            std::max((load[worst] - it.tokens) * spt[worst], (load[g] + it.tokens) * spt[g]) < cur * (1 - 1e-12)) {
          load[worst] -= it.tokens;
          load[g] += it.tokens;
          room[worst] += it.memory;
          room[g] -= it.memory;
          holds[static_cast<size_t>(it.expert)][worst] = 0;
          holds[static_cast<size_t>(it.expert)][g] = 1;
          gpu_of[k] = static_cast<int32_t>(g);
          improved = true;
          break;
        }
        // Swap with a lighter item on g.
        for (size_t q = 0; q < items.size(); ++q) {
          if (static_cast<size_t>(gpu_of[q]) != g) continue;
          const Item& other = items[q];
          if (other.tokens >= it.tokens || holds[static_cast<size_t>(other.expert)][worst]) continue;
          if (room[g] + other.memory < it.memory || room[worst] + it.memory < other.memory) continue;
          const double nw = (load[worst] - it.tokens + other.tokens) * spt[worst];
          const double ng = (load[g] + it.tokens - other.tokens) * spt[g];
          if (std::max(nw, ng) < cur * (1 - 1e-12)) {
            load[worst] += other.tokens - it.tokens;
            load[g] += it.tokens - other.tokens;
            room[worst] += it.memory - other.memory;
            room[g] += other.memory - it.memory;
            holds[static_cast<size_t>(it.expert)][worst] = 0;
            holds[static_cast<size_t>(it.expert)][g] = 1;
            holds[static_cast<size_t>(other.expert)][g] = 0;
            holds[static_cast<size_t>(other.expert)][worst] = 1;
            gpu_of[k] = static_cast<int32_t>(g);
            gpu_of[q] = static_cast<int32_t>(worst);
            improved = true;
            break;
          }
        }
      }
    }
    if (!improved) break;
  }
  return build(p, cluster, items, gpu_of);
}

Result<ExpertPlacement> place_experts_random(const ExpertPlacementProblem& p, const Cluster& cluster, uint64_t seed) {
  if (auto v = validate(p, cluster); !v) return v.error();
  std::mt19937_64 rng(seed);
  const size_t G = cluster.gpus.size();
  std::vector<int64_t> room(G);
  for (size_t g = 0; g < G; ++g) room[g] = capacity_of(p, cluster.gpus[g]);
  std::vector<Item> items;
  std::vector<int32_t> gpu_of;
  for (size_t e = 0; e < p.expert_tokens.size(); ++e) {
    Item it{static_cast<int32_t>(e), p.expert_tokens[e], p.expert_memory_bytes.empty() ? 0 : p.expert_memory_bytes[e]};
    std::vector<int32_t> fits;
    for (size_t g = 0; g < G; ++g)
      if (room[g] >= it.memory) fits.push_back(static_cast<int32_t>(g));
    if (fits.empty()) return does_not_fit(it);
    const int32_t g = fits[static_cast<size_t>(rng() % fits.size())];
    room[static_cast<size_t>(g)] -= it.memory;
    items.push_back(it);
    gpu_of.push_back(g);
  }
  return build(p, cluster, items, gpu_of);
}

}  // namespace aurora::sched
