// Test support: an independent checker of TransmissionPlans (written from the contract in
// transmission_plan.hpp, sharing no code with the planner) and random traffic generators.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/traffic.hpp"
#include "aurora/scheduler/transmission_plan.hpp"

namespace aurora::sched::testing {

// Returns "" when the plan is valid for these per-model matrices, else the first violation.
inline std::string check_plan(const TransmissionPlan& plan, const std::vector<const TrafficMatrix*>& per_model) {
  const int n = per_model.at(0)->num_gpus();
  // Phases partition the transfers, in order.
  size_t expect = 0;
  for (size_t k = 0; k < plan.phases.size(); ++k) {
    if (plan.phases[k].first_transfer != expect)
      return "phase " + std::to_string(k) + " does not start where the previous ended";
    if (plan.phases[k].num_transfers == 0) return "phase " + std::to_string(k) + " is empty";
    expect += plan.phases[k].num_transfers;
  }
  if (expect != plan.transfers.size()) return "phases do not cover all transfers";
  // Each byte exactly once.
  std::map<std::tuple<int, int, int>, int64_t> sent;
  for (const Transfer& t : plan.transfers) {
    if (t.src_gpu < 0 || t.src_gpu >= n || t.dst_gpu < 0 || t.dst_gpu >= n) return "GPU out of range";
    if (t.src_gpu == t.dst_gpu) return "local traffic in the plan";
    if (t.bytes <= 0) return "non-positive transfer";
    if (t.model < 0 || t.model >= static_cast<int>(per_model.size())) return "bad model index";
    sent[{t.src_gpu, t.dst_gpu, t.model}] += t.bytes;
  }
  for (size_t m = 0; m < per_model.size(); ++m)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        if (i == j) continue;
        auto it = sent.find({i, j, static_cast<int>(m)});
        const int64_t got = it == sent.end() ? 0 : it->second;
        if (got != (*per_model[m])(i, j))
          return "pair " + std::to_string(i) + "->" + std::to_string(j) + " model " + std::to_string(m) + ": sent " +
                 std::to_string(got) + " of " + std::to_string((*per_model[m])(i, j));
      }
  // One peer per GPU per phase, for the matching strategies (a truncated plan's last phase is all-at-once).
  const bool matching = plan.strategy == OrderStrategy::kMatching || plan.strategy == OrderStrategy::kRotation ||
                        plan.strategy == OrderStrategy::kMatchingTruncated;
  if (matching) {
    size_t checked = plan.phases.size();
    if (plan.strategy == OrderStrategy::kMatchingTruncated && checked > 0) --checked;
    for (size_t k = 0; k < checked; ++k) {
      std::vector<int> dst_of(static_cast<size_t>(n), -1), src_of(static_cast<size_t>(n), -1);
      for (const Transfer& t : plan.phase_transfers(k)) {
        int& d = dst_of[static_cast<size_t>(t.src_gpu)];
        int& s = src_of[static_cast<size_t>(t.dst_gpu)];
        if (d >= 0 && d != t.dst_gpu)
          return "phase " + std::to_string(k) + ": GPU " + std::to_string(t.src_gpu) + " sends to two GPUs";
        if (s >= 0 && s != t.src_gpu)
          return "phase " + std::to_string(k) + ": GPU " + std::to_string(t.dst_gpu) + " receives from two GPUs";
        d = t.dst_gpu;
        s = t.src_gpu;
      }
    }
  }
  return "";
}

inline std::string check_plan(const TransmissionPlan& plan, const TrafficMatrix& traffic) {
  return check_plan(plan, std::vector<const TrafficMatrix*>{&traffic});
}

// Independent cost of a plan whose phases are all matchings: sum of (latency + longest transfer at
// min(send, recv)), transfers of one pair in one phase added up.
inline double matching_plan_cost(const TransmissionPlan& plan, const Cluster& cluster, double latency_s) {
  double total = 0;
  for (size_t k = 0; k < plan.phases.size(); ++k) {
    std::map<std::pair<int, int>, int64_t> pair;
    for (const Transfer& t : plan.phase_transfers(k)) pair[{t.src_gpu, t.dst_gpu}] += t.bytes;
    double d = 0;
    for (const auto& [p, b] : pair) {
      const double rate = std::min(cluster.gpus[static_cast<size_t>(p.first)].send_bytes_per_s,
                                   cluster.gpus[static_cast<size_t>(p.second)].recv_bytes_per_s);
      d = std::max(d, static_cast<double>(b) / rate);
    }
    total += latency_s + d;
  }
  return total;
}

// kDecode is a label for benchmarks (Zipf traffic at decode-sized scale); random_traffic treats it as kZipf.
enum class TrafficKind { kUniform, kZipf, kSparse, kHotReceiver, kDecode };

inline const char* traffic_kind_name(TrafficKind k) {
  switch (k) {
    case TrafficKind::kUniform: return "uniform";
    case TrafficKind::kZipf: return "zipf";
    case TrafficKind::kSparse: return "sparse";
    case TrafficKind::kHotReceiver: return "hot_receiver";
    case TrafficKind::kDecode: return "decode_16k";
  }
  return "?";
}

// Integer byte counts, so that "meets the bound" is an exact comparison on uniform clusters.
inline TrafficMatrix random_traffic(std::mt19937_64& rng, int n, TrafficKind kind, int64_t scale = 1 << 20) {
  TrafficMatrix m(n);
  std::uniform_int_distribution<int64_t> bytes(0, scale);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // Zipf: expert popularity ~ 1 / rank^1.2, ranks shuffled; each row sends in proportion, with noise.
  std::vector<double> pop(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) pop[static_cast<size_t>(j)] = 1.0 / std::pow(j + 1.0, 1.2);
  std::shuffle(pop.begin(), pop.end(), rng);
  const int hot = static_cast<int>(rng() % static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      int64_t v = 0;
      switch (kind) {
        case TrafficKind::kUniform: v = bytes(rng); break;
        case TrafficKind::kZipf:
        case TrafficKind::kDecode:
          v = static_cast<int64_t>(static_cast<double>(scale) * pop[static_cast<size_t>(j)] * (0.5 + unit(rng)));
          break;
        case TrafficKind::kSparse: v = unit(rng) < 0.2 ? bytes(rng) : 0; break;
        case TrafficKind::kHotReceiver: v = j == hot ? scale * 4 + bytes(rng) : bytes(rng) / 8; break;
      }
      m(i, j) = v;
    }
  return m;
}

}  // namespace aurora::sched::testing
