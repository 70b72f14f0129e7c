#include "aurora/scheduler/all_to_all.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/lower_bound.hpp"
#include "fluid_model.hpp"
#include "matching_decomposition.hpp"

namespace aurora::sched {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
__extension__ using Int128 = __int128;
// Heterogeneous plans are decomposed in integer picoseconds of transfer time.
constexpr double kUnitsPerSecond = 1e12;

bool better(double cost, size_t phases, double best_cost, size_t best_phases) {
  const double tol = 1e-12 * std::max(1.0, std::fabs(best_cost));
  if (cost < best_cost - tol) return true;
  return cost <= best_cost + tol && phases < best_phases;
}

}  // namespace

struct AllToAllPlanner::Workspace {
  TransmissionPlan result, candidate;
  detail::FluidSimulator fluid;
  detail::MatchingDecomposer decomposer;
  bool decomposed = false;
  std::vector<int64_t> units;       // decomposition input
  std::vector<int64_t> pair_units;  // per pair: units assigned so far (heterogeneous byte conversion)
  std::vector<int64_t> pair_bytes;  // per pair: bytes assigned so far
  std::vector<int64_t> tail_pair;   // per pair: bytes of a truncated plan's all-at-once tail
  struct Estimate {
    double cost;
    size_t keep;
  };
  std::vector<double> head_cost;    // truncation: cost of the first k matching phases
  std::vector<Estimate> estimates;  // truncation: lower bound of each split
  std::vector<std::vector<int32_t>> send_order;  // stream baselines: per GPU, destinations in send order
  std::vector<double> tail_send, tail_recv;
  std::vector<std::vector<uint32_t>> queues;
  std::vector<Transfer> scratch;
  TrafficMatrix sum;

  const TrafficMatrix* traffic = nullptr;
  const Cluster* cluster = nullptr;
  int n = 0;
  double latency = 0;
  double lower_bound = 0;          // per-port bound of the traffic being planned
  double all_at_once_ratio = 0;    // all-at-once duration / lower_bound, once costed (0: not yet)
  bool exact_fluid = false;

  void begin_plan(TransmissionPlan& plan, OrderStrategy strategy, bool barrier) {
    plan.phases.clear();
    plan.transfers.clear();
    plan.strategy = strategy;
    plan.barrier_between_phases = barrier;
  }
  void open_phase(TransmissionPlan& plan) {
    plan.phases.push_back(Phase{static_cast<uint32_t>(plan.transfers.size()), 0, 0});
  }
  // Closes the last phase; drops it when empty. Duration: longest transfer at its pair rate when the phase
  // is a matching, else the fair-share fluid time.
  void close_phase(TransmissionPlan& plan, bool is_matching) {
    Phase& ph = plan.phases.back();
    ph.num_transfers = static_cast<uint32_t>(plan.transfers.size() - ph.first_transfer);
    if (ph.num_transfers == 0) {
      plan.phases.pop_back();
      return;
    }
    if (is_matching) {
      double d = 0;
      for (const Transfer& t : plan.phase_transfers(plan.phases.size() - 1))
        d = std::max(d, static_cast<double>(t.bytes) / cluster->pair_rate(t.src_gpu, t.dst_gpu));
      ph.duration_s = d;
    } else {
      ph.duration_s = fair_share(plan.phase_transfers(plan.phases.size() - 1));
    }
  }
  double fair_share(std::span<const Transfer> transfers) { return fluid.phase_s(transfers, *cluster, exact_fluid, latency); }
  double barrier_cost(const TransmissionPlan& plan) const {
    double c = 0;
    for (const Phase& ph : plan.phases) c += latency + ph.duration_s;
    return c;
  }

  void decompose() {
    if (decomposed) return;
    const size_t nn = static_cast<size_t>(n) * n;
    units.resize(nn);
    const bool uniform = cluster->uniform_bandwidth();
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const int64_t b = i == j ? 0 : (*traffic)(i, j);
        units[static_cast<size_t>(i) * n + j] =
            uniform || b == 0 ? b
                              : static_cast<int64_t>(std::ceil(static_cast<double>(b) * kUnitsPerSecond /
                                                               cluster->pair_rate(i, j)));
      }
    decomposer.decompose(units, n);
    decomposed = true;
  }

  // Appends the decomposition's phases [0, keep) as matching phases and, when keep < all, the rest as one
  // all-at-once phase. Bytes per piece: exact on uniform clusters (units are bytes); otherwise the pair's
  // bytes are spread over its pieces in proportion to their units, rounded so that they add up exactly.
  void emit_matching(TransmissionPlan& plan, size_t keep) {
    const bool uniform = cluster->uniform_bandwidth();
    const size_t total = decomposer.num_phases();
    begin_plan(plan, keep >= total ? OrderStrategy::kMatching : OrderStrategy::kMatchingTruncated, true);
    const size_t nn = static_cast<size_t>(n) * n;
    pair_units.assign(nn, 0);
    pair_bytes.assign(nn, 0);
    auto piece_bytes = [&](const detail::PhasePiece& p) -> int64_t {
      if (uniform) return p.units;
      const size_t idx = static_cast<size_t>(p.src) * n + p.dst;
      const int64_t all_bytes = (*traffic)(p.src, p.dst);
      const int64_t all_units = units[idx];
      pair_units[idx] += p.units;
      const auto upto = static_cast<int64_t>(static_cast<Int128>(all_bytes) * pair_units[idx] / all_units);
      const int64_t b = upto - pair_bytes[idx];
      pair_bytes[idx] = upto;
      return b;
    };
    for (size_t k = 0; k < total; ++k) {
      const bool tail = k >= keep;
      if (k == 0 || !tail || k == keep) open_phase(plan);
      for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != decomposer.phase_end(k); ++p) {
        const int64_t b = piece_bytes(*p);
        if (b > 0) plan.transfers.push_back(Transfer{p->src, p->dst, b, 0});
      }
      if (!tail) close_phase(plan, true);
    }
    if (keep < total) {
      // Coalesce the tail's pieces per pair: one grouped send/recv.
      Phase& ph = plan.phases.back();
      tail_pair.assign(nn, 0);
      for (size_t t = ph.first_transfer; t < plan.transfers.size(); ++t)
        tail_pair[static_cast<size_t>(plan.transfers[t].src_gpu) * n + plan.transfers[t].dst_gpu] += plan.transfers[t].bytes;
      plan.transfers.resize(ph.first_transfer);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
          if (tail_pair[static_cast<size_t>(i) * n + j] > 0)
            plan.transfers.push_back(Transfer{i, j, tail_pair[static_cast<size_t>(i) * n + j], 0});
      close_phase(plan, false);
    }
    plan.makespan_s = barrier_cost(plan);
  }

  // Picks how many matching phases to keep before one all-at-once tail phase. Estimates every split with
  // the tail's per-port lower bound, then costs the most promising few exactly.
  // Splits whose estimate (a lower bound) cannot beat `beat` are not costed; when none can, the plan is left
  // with makespan infinity.
  void emit_truncated(TransmissionPlan& plan, int max_phases, double beat) {
    const size_t total = decomposer.num_phases();
    size_t max_keep = total - 1;
    if (max_phases > 0) max_keep = std::min(max_keep, static_cast<size_t>(max_phases - 1));
    if (total < 2) {  // nothing to truncate
      emit_matching(plan, total);
      return;
    }
    if (max_keep == 0) {  // one phase allowed: everything at once
      emit_matching(plan, 0);
      return;
    }
    // Per-phase duration and cost prefix sums; tail port loads by walking splits from the end.
    const bool uniform = cluster->uniform_bandwidth();
    head_cost.assign(total + 1, 0.0);
    for (size_t k = 0; k < total; ++k) {
      double d = 0;
      for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != decomposer.phase_end(k); ++p)
        d = std::max(d, uniform ? static_cast<double>(p->units) / cluster->pair_rate(p->src, p->dst)
                                : static_cast<double>(p->units) / kUnitsPerSecond);
      head_cost[k + 1] = head_cost[k] + latency + d;
    }
    tail_send.assign(static_cast<size_t>(n), 0.0);
    tail_recv.assign(static_cast<size_t>(n), 0.0);
    estimates.clear();
    for (size_t k = total; k-- > 1;) {
      for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != decomposer.phase_end(k); ++p) {
        const double bytes = uniform ? static_cast<double>(p->units)
                                     : static_cast<double>(p->units) / kUnitsPerSecond * cluster->pair_rate(p->src, p->dst);
        tail_send[static_cast<size_t>(p->src)] += bytes;
        tail_recv[static_cast<size_t>(p->dst)] += bytes;
      }
      if (k > max_keep) continue;
      double bound = 0;
      for (int g = 0; g < n; ++g) {
        bound = std::max(bound, tail_send[static_cast<size_t>(g)] / cluster->gpus[static_cast<size_t>(g)].send_bytes_per_s);
        bound = std::max(bound, tail_recv[static_cast<size_t>(g)] / cluster->gpus[static_cast<size_t>(g)].recv_bytes_per_s);
      }
      estimates.push_back(Estimate{head_cost[k] + latency + bound, k});
    }
    const size_t tries = std::min<size_t>(2, estimates.size());
    std::partial_sort(estimates.begin(), estimates.begin() + static_cast<std::ptrdiff_t>(tries), estimates.end(),
                      [](const Estimate& a, const Estimate& b) { return a.cost < b.cost; });
    // The estimates are lower bounds (the tail at its per-port bound). When an all-at-once phase of this
    // traffic was already costed, its ratio to the bound predicts how much the tail will exceed its bound;
    // skip the fluid simulation when even that cannot win (this only prunes Aurora's own candidate).
    const double tail_factor = all_at_once_ratio > 1 ? all_at_once_ratio : 1.0;
    auto predicted = [&](const Estimate& e) { return head_cost[e.keep] + latency + (e.cost - head_cost[e.keep] - latency) * tail_factor; };
    if (estimates[0].cost >= beat || (beat < kInf && predicted(estimates[0]) >= beat)) {
      begin_plan(plan, OrderStrategy::kMatchingTruncated, true);
      plan.makespan_s = kInf;
      return;
    }
    size_t best_keep = estimates[0].keep;
    double best_cost = kInf;
    for (size_t t = 0; t < tries; ++t) {
      if (t > 0 && estimates[t].cost >= std::min(beat, best_cost)) break;
      emit_matching(plan, estimates[t].keep);
      if (plan.makespan_s < best_cost) {
        best_cost = plan.makespan_s;
        best_keep = estimates[t].keep;
      }
    }
    if (plan.makespan_s != best_cost) emit_matching(plan, best_keep);
  }

  void emit_all_at_once(TransmissionPlan& plan) {
    begin_plan(plan, OrderStrategy::kAllAtOnce, true);
    open_phase(plan);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (i != j && (*traffic)(i, j) > 0) plan.transfers.push_back(Transfer{i, j, (*traffic)(i, j), 0});
    close_phase(plan, false);
    plan.makespan_s = barrier_cost(plan);
    if (!plan.phases.empty() && lower_bound > 0) all_at_once_ratio = plan.phases[0].duration_s / lower_bound;
  }

  void emit_rotation(TransmissionPlan& plan) {
    begin_plan(plan, OrderStrategy::kRotation, true);
    for (int k = 1; k < n; ++k) {
      open_phase(plan);
      for (int i = 0; i < n; ++i) {
        const int j = (i + k) % n;
        if ((*traffic)(i, j) > 0) plan.transfers.push_back(Transfer{i, j, (*traffic)(i, j), 0});
      }
      close_phase(plan, true);
    }
    plan.makespan_s = barrier_cost(plan);
  }

  double rotation_cost() const {
    double c = 0;
    for (int k = 1; k < n; ++k) {
      double d = -1;
      for (int i = 0; i < n; ++i) {
        const int j = (i + k) % n;
        if ((*traffic)(i, j) > 0) d = std::max(d, static_cast<double>((*traffic)(i, j)) / cluster->pair_rate(i, j));
      }
      if (d >= 0) c += latency + d;
    }
    return c;
  }

  // Barrier-free per-GPU send orders: phase k holds every GPU's k-th send.
  void emit_streams(TransmissionPlan& plan, OrderStrategy strategy, uint64_t seed) {
    begin_plan(plan, strategy, false);
    if (queues.size() < static_cast<size_t>(n)) queues.resize(static_cast<size_t>(n));
    if (send_order.size() < static_cast<size_t>(n)) send_order.resize(static_cast<size_t>(n));
    auto& order = send_order;
    std::mt19937_64 rng(seed);
    size_t depth = 0;
    for (int i = 0; i < n; ++i) {
      auto& o = order[static_cast<size_t>(i)];
      o.clear();
      for (int j = 0; j < n; ++j)
        if (i != j && (*traffic)(i, j) > 0) o.push_back(j);
      if (strategy == OrderStrategy::kShortestFirst) {
        std::stable_sort(o.begin(), o.end(), [&](int a, int b) { return (*traffic)(i, a) < (*traffic)(i, b); });
      } else {
        for (size_t k = o.size(); k > 1; --k) std::swap(o[k - 1], o[static_cast<size_t>(rng() % k)]);
      }
      depth = std::max(depth, o.size());
    }
    for (size_t k = 0; k < depth; ++k) {
      open_phase(plan);
      for (int i = 0; i < n; ++i) {
        const auto& o = order[static_cast<size_t>(i)];
        if (k < o.size()) plan.transfers.push_back(Transfer{i, o[k], (*traffic)(i, o[k]), 0});
      }
      plan.phases.back().num_transfers = static_cast<uint32_t>(plan.transfers.size() - plan.phases.back().first_transfer);
    }
    plan.makespan_s = stream_cost(plan);
  }

  double stream_cost(const TransmissionPlan& plan) {
    if (queues.size() < static_cast<size_t>(n)) queues.resize(static_cast<size_t>(n));
    for (int g = 0; g < n; ++g) queues[static_cast<size_t>(g)].clear();
    for (uint32_t t = 0; t < plan.transfers.size(); ++t)
      queues[static_cast<size_t>(plan.transfers[t].src_gpu)].push_back(t);
    return fluid.streams_s(plan.transfers, queues, *cluster, latency);
  }

  void emit(TransmissionPlan& plan, OrderStrategy strategy, const AllToAllOptions& options, double beat = kInf) {
    switch (strategy) {
      case OrderStrategy::kMatching:
        decompose();
        emit_matching(plan, decomposer.num_phases());
        if (options.max_phases > 0 && plan.phases.size() > static_cast<size_t>(options.max_phases))
          plan.makespan_s = kInf;
        break;
      case OrderStrategy::kMatchingTruncated:
        decompose();
        emit_truncated(plan, options.max_phases, beat);
        break;
      case OrderStrategy::kAllAtOnce: emit_all_at_once(plan); break;
      case OrderStrategy::kRotation: emit_rotation(plan); break;
      case OrderStrategy::kShortestFirst:
      case OrderStrategy::kRandomOrder: emit_streams(plan, strategy, options.seed); break;
    }
  }
};

AllToAllPlanner::AllToAllPlanner() : ws_(std::make_unique<Workspace>()) {}
AllToAllPlanner::~AllToAllPlanner() = default;
AllToAllPlanner::AllToAllPlanner(AllToAllPlanner&&) noexcept = default;
AllToAllPlanner& AllToAllPlanner::operator=(AllToAllPlanner&&) noexcept = default;

const TransmissionPlan& AllToAllPlanner::plan(const TrafficMatrix& traffic, const Cluster& cluster,
                                              const AllToAllOptions& options) {
  Workspace& ws = *ws_;
  const int n = traffic.num_gpus();
  AURORA_CHECK_MSG(cluster.num_gpus() == n, "traffic has " << n << " GPUs, cluster " << cluster.num_gpus());
  AURORA_CHECK(options.phase_latency_s >= 0);
  ws.traffic = &traffic;
  ws.cluster = &cluster;
  ws.n = n;
  ws.latency = options.phase_latency_s;
  ws.exact_fluid = options.exact_fluid || options.evaluate_all;
  ws.decomposed = false;
  ws.all_at_once_ratio = 0;
  TransmissionPlan& result = ws.result;
  result.clear();
  result.phase_latency_s = options.phase_latency_s;
  result.lower_bound_s = all_to_all_lower_bound_s(traffic, cluster);
  result.matching_bound_s = matching_lower_bound_s(traffic, cluster);
  ws.lower_bound = result.lower_bound_s;
  if (traffic.network_bytes() == 0) {
    result.strategy = OrderStrategy::kMatching;
    result.candidate_makespan_s.fill(0.0);
    return result;
  }

  if (options.policy == ChoicePolicy::kForce) {
    ws.emit(result, options.forced_strategy, options);
    result.candidate_makespan_s[static_cast<size_t>(options.forced_strategy)] = result.makespan_s;
    return result;
  }

  // Lower bound of each strategy's cost, so that strategies that cannot win are never built.
  const double lat = options.phase_latency_s;
  int degree = 0;
  double stream_bound = result.lower_bound_s;
  for (int g = 0; g < n; ++g) {
    int out = 0, in = 0;
    for (int h = 0; h < n; ++h) {
      out += g != h && traffic(g, h) > 0;
      in += g != h && traffic(h, g) > 0;
    }
    degree = std::max({degree, out, in});
    stream_bound = std::max(stream_bound, out * lat + static_cast<double>(traffic.network_send_bytes(g)) /
                                                          cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s);
  }
  struct Candidate {
    OrderStrategy strategy;
    double bound;
  };
  std::array<Candidate, kNumOrderStrategies> cands{{
      {OrderStrategy::kMatching, degree * lat + result.matching_bound_s},
      {OrderStrategy::kMatchingTruncated, 2 * lat + result.lower_bound_s},
      {OrderStrategy::kAllAtOnce, lat + result.lower_bound_s},
      {OrderStrategy::kRotation, ws.rotation_cost()},
      {OrderStrategy::kShortestFirst, stream_bound},
      {OrderStrategy::kRandomOrder, stream_bound},
  }};
  if (options.max_phases > 0 && degree > options.max_phases) cands[0].bound = kInf;
  if (options.max_phases == 1) cands[1].bound = kInf;
  result.candidate_makespan_s[static_cast<size_t>(OrderStrategy::kRotation)] = cands[3].bound;  // exact, and cheap
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.bound < b.bound; });

  double best = kInf;
  size_t best_phases = std::numeric_limits<size_t>::max();
  bool have = false;
  for (const Candidate& c : cands) {
    if (c.bound == kInf) continue;
    if (!options.evaluate_all && have && c.bound >= best * (1 - 1e-12)) continue;
    ws.emit(ws.candidate, c.strategy, options, options.evaluate_all || !have ? kInf : best);
    const double cost = ws.candidate.makespan_s;
    if (cost == kInf) continue;
    result.candidate_makespan_s[static_cast<size_t>(c.strategy)] = cost;
    if (!have || better(cost, ws.candidate.phases.size(), best, best_phases)) {
      best = cost;
      best_phases = ws.candidate.phases.size();
      have = true;
      std::swap(result.phases, ws.candidate.phases);
      std::swap(result.transfers, ws.candidate.transfers);
      result.strategy = ws.candidate.strategy;
      result.barrier_between_phases = ws.candidate.barrier_between_phases;
      result.makespan_s = cost;
    }
  }
  AURORA_CHECK(have);
  return result;
}

const TransmissionPlan& AllToAllPlanner::plan_models(std::span<const TrafficMatrix* const> per_model,
                                                     const Cluster& cluster, const AllToAllOptions& options) {
  AURORA_CHECK(!per_model.empty());
  Workspace& ws = *ws_;
  const int n = cluster.num_gpus();
  ws.sum.assign_zero(n);
  for (const TrafficMatrix* m : per_model) ws.sum += *m;
  plan(ws.sum, cluster, options);
  TransmissionPlan& result = ws.result;
  if (per_model.size() == 1) return result;
  // Split every piece of (src, dst) between the models: model 0's bytes first, then model 1's, ...
  const size_t nn = static_cast<size_t>(n) * n;
  ws.pair_bytes.assign(nn, 0);  // bytes of the pair already assigned
  ws.scratch.clear();
  for (Phase& ph : result.phases) {
    const uint32_t first = static_cast<uint32_t>(ws.scratch.size());
    for (const Transfer& t : result.phase_transfers(static_cast<size_t>(&ph - result.phases.data()))) {
      int64_t& done = ws.pair_bytes[static_cast<size_t>(t.src_gpu) * n + t.dst_gpu];
      int64_t left = t.bytes;
      int64_t offset = 0;  // bytes of the pair that belong to models before m
      for (size_t m = 0; m < per_model.size() && left > 0; ++m) {
        const int64_t mb = (*per_model[m])(t.src_gpu, t.dst_gpu);
        const int64_t start = std::max(done, offset);
        const int64_t take = std::min(left, offset + mb - start);
        if (take > 0) {
          ws.scratch.push_back(Transfer{t.src_gpu, t.dst_gpu, take, static_cast<int32_t>(m)});
          done += take;
          left -= take;
        }
        offset += mb;
      }
      AURORA_CHECK(left == 0);
    }
    ph.first_transfer = first;
    ph.num_transfers = static_cast<uint32_t>(ws.scratch.size() - first);
  }
  std::swap(result.transfers, ws.scratch);
  return result;
}

TransmissionPlan plan_all_to_all(const TrafficMatrix& traffic, const Cluster& cluster, const AllToAllOptions& options) {
  AllToAllPlanner planner;
  return planner.plan(traffic, cluster, options);
}

double fair_share_makespan_s(std::span<const Transfer> transfers, const Cluster& cluster) {
  detail::FluidSimulator sim;
  return sim.phase_s(transfers, cluster, true);
}

double predict_makespan_s(const TransmissionPlan& plan, const Cluster& cluster, double phase_latency_s, bool exact_fluid) {
  detail::FluidSimulator sim;
  if (!plan.barrier_between_phases) {
    const int n = cluster.num_gpus();
    std::vector<std::vector<uint32_t>> queues(static_cast<size_t>(n));
    for (uint32_t t = 0; t < plan.transfers.size(); ++t) queues[static_cast<size_t>(plan.transfers[t].src_gpu)].push_back(t);
    return sim.streams_s(plan.transfers, queues, cluster, phase_latency_s);
  }
  double total = 0;
  for (size_t k = 0; k < plan.num_phases(); ++k) {
    if (plan.phases[k].num_transfers == 0) continue;
    total += phase_latency_s + sim.phase_s(plan.phase_transfers(k), cluster, exact_fluid, phase_latency_s);
  }
  return total;
}

}  // namespace aurora::sched
