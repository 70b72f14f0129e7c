// Test support: random MoE layer statistics shaped like the paper's setting (skewed routing).
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/model_stats.hpp"

namespace aurora::sched::testing {

// One layer, experts form: n shards (one per expert) of tokens_per_shard tokens each, routed top-1 with
// Zipf-like popularity (exponent `skew`, experts in random order), bytes_per_token each. When symmetric,
// the matrix is made symmetric (every expert sends what it receives: the paper's Case I).
inline LayerStats random_layer(std::mt19937_64& rng, int n, double skew, bool symmetric = false,
                               int64_t tokens_per_shard = 2048, int64_t bytes_per_token = 2048) {
  std::vector<double> pop(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) pop[static_cast<size_t>(j)] = 1.0 / std::pow(j + 1.0, skew);
  std::shuffle(pop.begin(), pop.end(), rng);
  double total = 0;
  for (double p : pop) total += p;
  std::uniform_real_distribution<double> noise(0.7, 1.3);
  LayerStats l;
  l.num_shards = l.num_experts = n;
  l.traffic.assign(static_cast<size_t>(n) * n, 0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const double tokens = static_cast<double>(tokens_per_shard) * pop[static_cast<size_t>(j)] / total * noise(rng);
      l.traffic[static_cast<size_t>(i) * n + j] = static_cast<int64_t>(tokens) * bytes_per_token;
    }
  if (symmetric)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < i; ++j) l.traffic[static_cast<size_t>(j) * n + i] = l.traffic[static_cast<size_t>(i) * n + j];
  l.gate_s = 5e-6;
  l.aggregate_s = 5e-6;
  l.expert_s_per_byte = 20e-6 / 1e6;  // 20 us per MB
  return l;
}

inline ModelStats random_model(std::mt19937_64& rng, const std::string& name, int n, int layers, double skew,
                               bool symmetric = false) {
  ModelStats m;
  m.name = name;
  for (int l = 0; l < layers; ++l) m.layers.push_back(random_layer(rng, n, skew, symmetric));
  return m;
}

// The paper's heterogeneous cluster: four GPU types, 100/80/50/40 Gbps, equally many of each; compute
// speed ordered with bandwidth (footnote 2).
inline Cluster paper_heterogeneous(int n) {
  const double gbps[4] = {100, 80, 50, 40};
  const double speed[4] = {1.0, 0.8, 0.5, 0.4};
  Cluster c;
  for (int g = 0; g < n; ++g) c.gpus.push_back(GpuSpec::from_gbps(gbps[g * 4 / n], speed[g * 4 / n]));
  return c;
}

}  // namespace aurora::sched::testing
