#include "aurora/scheduler/all_to_all.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/lower_bound.hpp"
#include "fluid_model.hpp"
#include "matching_decomposition.hpp"
#include "proportional_split.hpp"

namespace aurora::sched {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Heterogeneous plans are decomposed in integer picoseconds of transfer time.
constexpr double kUnitsPerSecond = 1e12;
// Above this many GPUs the truncated candidate is costed only when the matching candidate has already
// built the decomposition (see plan()).
constexpr int kTruncationMaxGpus = 32;
// Truncation is not costed when it could beat the best plan so far by less than this fraction.
constexpr double kTruncationMinGain = 1e-4;

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
  std::vector<int64_t> units;                    // decomposition input
  std::vector<int64_t> pair_bytes;               // per pair: bytes assigned so far (uniform bandwidth)
  std::vector<detail::ProportionalSplit> split;  // heterogeneous: per pair, its bytes over its pieces
  struct Estimate {
    double cost;
    size_t keep;
  };
  std::vector<double> head_cost;                 // truncation: cost of the first k matching phases
  std::vector<Estimate> estimates;               // truncation: lower bound of each split
  std::vector<std::vector<int32_t>> send_order;  // stream baselines: per GPU, destinations in send order
  std::vector<double> tail_send, tail_recv;
  std::vector<std::vector<uint32_t>> queues;
  std::vector<Transfer> scratch;
  TrafficMatrix sum;

  const TrafficMatrix* traffic = nullptr;
  const Cluster* cluster = nullptr;
  int n = 0;
  double latency = 0;
  double lower_bound = 0;        // per-port bound of the traffic being planned
  double all_at_once_ratio = 0;  // all-at-once duration / lower_bound, once costed (0: not yet)
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
  // is a matching, else the fair-share fluid time (infinity when it would exceed give_up_s).
  void close_phase(TransmissionPlan& plan, bool is_matching, double give_up_s = kInf) {
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
      ph.duration_s = give_up_s < 0 ? kInf
                                    : fluid.phase_s(plan.phase_transfers(plan.phases.size() - 1), *cluster, exact_fluid,
                                                    latency, give_up_s);
    }
  }
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
    if (!uniform) split.resize(nn);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const size_t idx = static_cast<size_t>(i) * n + j;
        const int64_t b = i == j ? 0 : (*traffic)(i, j);
        units[idx] =
            uniform || b == 0
                ? b
                : static_cast<int64_t>(std::ceil(static_cast<double>(b) * kUnitsPerSecond / cluster->pair_rate(i, j)));
        if (!uniform) split[idx] = detail::ProportionalSplit::make(b, units[idx]);
      }
    decomposer.decompose(units, n);
    decomposed = true;
  }

  // Appends the decomposition's phases [0, keep) as matching phases and, when keep < all, the rest as one
  // all-at-once phase. Bytes per piece: exact on uniform clusters (units are bytes); otherwise the pair's
  // bytes are spread over its pieces in proportion to their units, rounded so that they add up exactly.
  // The tail's fluid simulation stops early when the plan would cost more than `beat` (makespan infinity).
  void emit_matching(TransmissionPlan& plan, size_t keep, double beat = kInf) {
    const bool uniform = cluster->uniform_bandwidth();
    const size_t total = decomposer.num_phases();
    const bool truncated = keep < total;
    begin_plan(plan, truncated ? OrderStrategy::kMatchingTruncated : OrderStrategy::kMatching, true);
    const size_t nn = static_cast<size_t>(n) * n;
    if (uniform && truncated) pair_bytes.assign(nn, 0);
    if (!uniform) {
      for (detail::ProportionalSplit& sp : split) sp.units_done = sp.bytes_done = 0;
    }
    const size_t head = std::min(keep, total);
    plan.phases.reserve(head + 1);
    plan.transfers.reserve(decomposer.num_pieces() + (truncated ? nn : 0));
    // A matching phase lasts as long as its longest transfer at its pair rate (close_phase's rule; on a
    // uniform cluster the longest transfer is the phase's largest piece).
    const double rate = uniform ? cluster->gpus[0].send_bytes_per_s : 0.0;
    for (size_t k = 0; k < head; ++k) {
      if (k + 2 < head) {  // phases lie scattered in the decomposer's buffer: fetch ahead
        const char* next = reinterpret_cast<const char*>(decomposer.phase_begin(k + 2));
        const char* next_end = reinterpret_cast<const char*>(decomposer.phase_end(k + 2));
        for (; next < next_end; next += 64) __builtin_prefetch(next);
      }
      open_phase(plan);
      if (uniform) {
        for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != decomposer.phase_end(k); ++p) {
          if (truncated)
            pair_bytes[static_cast<size_t>(p->src) * n + p->dst] += p->units;  // the tail is what the head leaves
          plan.transfers.push_back(Transfer{p->src, p->dst, p->units, 0});
        }
      } else {
        // The phase lasts max(bytes / pair_rate) (close_phase's rule).
        double longest = 0;
        const detail::PhasePiece* const end = decomposer.phase_end(k);
        for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != end; ++p) {
          const int64_t b = split[static_cast<size_t>(p->src) * n + p->dst].take(p->units);
          if (b <= 0) continue;
          plan.transfers.push_back(Transfer{p->src, p->dst, b, 0});
          longest = std::max(
              longest, static_cast<double>(b) / std::min(cluster->gpus[static_cast<size_t>(p->src)].send_bytes_per_s,
                                                         cluster->gpus[static_cast<size_t>(p->dst)].recv_bytes_per_s));
        }
        plan.phases.back().duration_s = longest;
      }
      Phase& ph = plan.phases.back();
      ph.num_transfers = static_cast<uint32_t>(plan.transfers.size() - ph.first_transfer);
      if (ph.num_transfers == 0) {
        plan.phases.pop_back();
        continue;
      }
      if (uniform) ph.duration_s = static_cast<double>(decomposer.phase_units(k)) / rate;
    }
    if (truncated) {
      // The tail, coalesced per pair (one grouped send/recv): what the head phases left of each pair (the
      // pieces of the remaining phases add up to exactly that, as per-pair byte splits telescope).
      const double head_s = barrier_cost(plan);
      open_phase(plan);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          const size_t idx = static_cast<size_t>(i) * n + j;
          const int64_t left = i == j ? 0 : (*traffic)(i, j) - (uniform ? pair_bytes[idx] : split[idx].bytes_done);
          if (left > 0) plan.transfers.push_back(Transfer{i, j, left, 0});
        }
      close_phase(plan, false, beat - head_s - latency);
    }
    plan.makespan_s = barrier_cost(plan);
  }

  // Picks how many matching phases to keep before one all-at-once tail phase. Estimates every split with
  // the tail's per-port lower bound, then costs the most promising few exactly.
  // Splits whose estimate (a lower bound) cannot beat `beat` are not costed; when none can, the plan is left
  // with makespan infinity.
  void emit_truncated(TransmissionPlan& plan, int max_phases, double beat) {
    if (truncation_cannot_win(beat)) {
      begin_plan(plan, OrderStrategy::kMatchingTruncated, true);
      plan.makespan_s = kInf;
      return;
    }
    decompose();
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
    // Per-phase duration (its largest piece) and cost prefix sums.
    const bool uniform = cluster->uniform_bandwidth();
    const double units_per_s = uniform ? cluster->gpus[0].send_bytes_per_s : kUnitsPerSecond;
    head_cost.assign(total + 1, 0.0);
    for (size_t k = 0; k < total; ++k)
      head_cost[k + 1] = head_cost[k] + latency + static_cast<double>(decomposer.phase_units(k)) / units_per_s;
    // A split keeping k phases costs at least (k + 1) * latency + lower_bound (its head and its tail's
    // bound cover every port's load): splits at or above `beat` by that need no estimate.
    size_t k_max = max_keep;
    if (latency > 0 && beat < kInf)
      k_max = std::min(k_max, static_cast<size_t>(std::max(0.0, std::floor((beat - lower_bound) / latency))));
    estimates.clear();
    auto piece_bytes = [&](const detail::PhasePiece* p) {
      return uniform ? static_cast<double>(p->units)
                     : static_cast<double>(p->units) / kUnitsPerSecond * cluster->pair_rate(p->src, p->dst);
    };
    auto port_bound = [&](size_t g, double send, double recv) {
      return std::max(send / cluster->gpus[g].send_bytes_per_s, recv / cluster->gpus[g].recv_bytes_per_s);
    };
    tail_send.assign(static_cast<size_t>(n), 0.0);
    tail_recv.assign(static_cast<size_t>(n), 0.0);
    if (k_max * static_cast<size_t>(n) < decomposer.num_pieces()) {
      // Few splits: from the front, the tail is each port's load minus the head's pieces.
      for (int g = 0; g < n; ++g) {
        tail_send[static_cast<size_t>(g)] = static_cast<double>(traffic->network_send_bytes(g));
        tail_recv[static_cast<size_t>(g)] = static_cast<double>(traffic->network_recv_bytes(g));
      }
      for (size_t k = 1; k <= k_max; ++k) {
        for (const detail::PhasePiece* p = decomposer.phase_begin(k - 1); p != decomposer.phase_end(k - 1); ++p) {
          tail_send[static_cast<size_t>(p->src)] -= piece_bytes(p);
          tail_recv[static_cast<size_t>(p->dst)] -= piece_bytes(p);
        }
        double bound = 0;
        for (size_t g = 0; g < static_cast<size_t>(n); ++g)
          bound = std::max(bound, port_bound(g, tail_send[g], tail_recv[g]));
        estimates.push_back(Estimate{head_cost[k] + latency + bound, k});
      }
    } else {
      // Every split: from the end, tail loads only grow, so the tail's per-port bound is a running maximum.
      double bound = 0;
      for (size_t k = total; k-- > 1;) {
        for (const detail::PhasePiece* p = decomposer.phase_begin(k); p != decomposer.phase_end(k); ++p) {
          const double bytes = piece_bytes(p);
          tail_send[static_cast<size_t>(p->src)] += bytes;
          tail_recv[static_cast<size_t>(p->dst)] += bytes;
          bound = std::max({bound, port_bound(static_cast<size_t>(p->src), tail_send[static_cast<size_t>(p->src)], 0.0),
                            port_bound(static_cast<size_t>(p->dst), 0.0, tail_recv[static_cast<size_t>(p->dst)])});
        }
        if (k <= k_max) estimates.push_back(Estimate{head_cost[k] + latency + bound, k});
      }
    }
    if (estimates.empty()) {  // no split can beat `beat`
      begin_plan(plan, OrderStrategy::kMatchingTruncated, true);
      plan.makespan_s = kInf;
      return;
    }
    const size_t tries = std::min<size_t>(2, estimates.size());
    std::partial_sort(
        estimates.begin(), estimates.begin() + static_cast<std::ptrdiff_t>(tries), estimates.end(),
        [](const Estimate& a, const Estimate& b) { return a.cost < b.cost || (a.cost == b.cost && a.keep < b.keep); });
    // The estimates are lower bounds (the tail at its per-port bound). When an all-at-once phase of this
    // traffic was already costed, its ratio to the bound predicts how much the tail will exceed its bound;
    // skip the fluid simulation when even that cannot win (this only prunes Aurora's own candidate).
    const double tail_factor = all_at_once_ratio > 1 ? all_at_once_ratio : 1.0;
    auto predicted = [&](const Estimate& e) {
      return head_cost[e.keep] + latency + (e.cost - head_cost[e.keep] - latency) * tail_factor;
    };
    if (estimates[0].cost >= beat || (beat < kInf && predicted(estimates[0]) >= beat)) {
      begin_plan(plan, OrderStrategy::kMatchingTruncated, true);
      plan.makespan_s = kInf;
      return;
    }
    size_t best_keep = estimates[0].keep;
    double best_cost = kInf;
    for (size_t t = 0; t < tries; ++t) {
      if (t > 0 && estimates[t].cost >= std::min(beat, best_cost)) break;
      emit_matching(plan, estimates[t].keep, std::min(beat, best_cost));
      if (plan.makespan_s < best_cost) {
        best_cost = plan.makespan_s;
        best_keep = estimates[t].keep;
      }
    }
    if (best_cost == kInf) {  // every try gave up: it cannot beat `beat`
      begin_plan(plan, OrderStrategy::kMatchingTruncated, true);
      plan.makespan_s = kInf;
    } else if (plan.makespan_s != best_cost) {
      emit_matching(plan, best_keep);
    }
  }

  // Before decomposing: whether emit_truncated's own test (`predicted(estimates[0]) >= beat` below) is
  // certain to reject every split. A split keeping k >= 1 phases of total duration D <= k * longest
  // pair time has a tail whose per-port bound is at least lower_bound - D, so its predicted cost
  // (k + 1) * latency + D + tail_factor * tail bound is at least
  //   (k + 1) * latency + lower_bound + (tail_factor - 1) * max(0, lower_bound - k * longest),
  // linear in k until k * longest reaches lower_bound: its minimum over k is at k = 1 or at that k.
  // Also true when even its lower bound 2 * latency + LB gains less than kTruncationMinGain over beat:
  // truncation is Aurora's own refinement, not a baseline, and such a gain is below rounding noise
  // (a heterogeneous matching plan exceeds the matching bound by ~5e-5 from byte rounding).
  bool truncation_cannot_win(double beat) const {
    if (beat == kInf) return false;
    if (2 * latency + lower_bound >= beat * (1 - kTruncationMinGain)) return true;
    const double factor = all_at_once_ratio > 1 ? all_at_once_ratio : 1.0;
    double longest = 0;  // the longest piece any phase can have (plus rounding of picosecond units)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (i != j) longest = std::max(longest, static_cast<double>((*traffic)(i, j)) / cluster->pair_rate(i, j));
    longest = longest * (1 + 1e-9) + 1e-12;
    auto at = [&](double k) {
      return (k + 1) * latency + lower_bound + (factor - 1) * std::max(0.0, lower_bound - k * longest);
    };
    const double k_flat = longest > 0 ? std::max(1.0, std::ceil(lower_bound / longest)) : 1.0;
    return std::min(at(1), at(k_flat)) >= beat * (1 + 1e-9);
  }

  void emit_all_at_once(TransmissionPlan& plan, double beat) {
    begin_plan(plan, OrderStrategy::kAllAtOnce, true);
    open_phase(plan);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (i != j && (*traffic)(i, j) > 0) plan.transfers.push_back(Transfer{i, j, (*traffic)(i, j), 0});
    close_phase(plan, false, beat - latency);
    plan.makespan_s = barrier_cost(plan);
    if (lower_bound > 0 && plan.makespan_s < kInf && !plan.phases.empty())
      all_at_once_ratio = plan.phases[0].duration_s / lower_bound;
    else if (lower_bound > 0 && plan.makespan_s == kInf)  // gave up: its duration exceeds beat - latency
      all_at_once_ratio = std::max(all_at_once_ratio, (beat - latency) / lower_bound);
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
  void emit_streams(TransmissionPlan& plan, OrderStrategy strategy, uint64_t seed, double beat) {
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
        // Smallest first, ties by destination (a stable sort of the ascending list, without its buffer).
        std::sort(o.begin(), o.end(), [&](int a, int b) {
          const int64_t ta = (*traffic)(i, a), tb = (*traffic)(i, b);
          return ta < tb || (ta == tb && a < b);
        });
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
      plan.phases.back().num_transfers =
          static_cast<uint32_t>(plan.transfers.size() - plan.phases.back().first_transfer);
    }
    plan.makespan_s = stream_cost(plan, beat);
  }

  double stream_cost(const TransmissionPlan& plan, double beat) {
    if (queues.size() < static_cast<size_t>(n)) queues.resize(static_cast<size_t>(n));
    for (int g = 0; g < n; ++g) queues[static_cast<size_t>(g)].clear();
    for (uint32_t t = 0; t < plan.transfers.size(); ++t)
      queues[static_cast<size_t>(plan.transfers[t].src_gpu)].push_back(t);
    return fluid.streams_s(plan.transfers, queues, *cluster, latency, beat);
  }

  void emit(TransmissionPlan& plan, OrderStrategy strategy, const AllToAllOptions& options, double beat = kInf) {
    switch (strategy) {
      case OrderStrategy::kMatching:
        decompose();
        emit_matching(plan, decomposer.num_phases());
        if (options.max_phases > 0 && plan.phases.size() > static_cast<size_t>(options.max_phases))
          plan.makespan_s = kInf;
        break;
      case OrderStrategy::kMatchingTruncated: emit_truncated(plan, options.max_phases, beat); break;
      case OrderStrategy::kAllAtOnce: emit_all_at_once(plan, beat); break;
      case OrderStrategy::kRotation: emit_rotation(plan); break;
      case OrderStrategy::kShortestFirst:
      case OrderStrategy::kRandomOrder: emit_streams(plan, strategy, options.seed, beat); break;
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
  double stream_bound = lat + result.lower_bound_s;  // streams: no byte moves before the first latency
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
  // In bound order; on equal bounds in this order (all-at-once before truncation: its fair-share ratio
  // then sharpens truncation's pruning).
  std::array<Candidate, kNumOrderStrategies> cands{{
      {OrderStrategy::kMatching, degree * lat + result.matching_bound_s},
      {OrderStrategy::kAllAtOnce, lat + result.lower_bound_s},
      {OrderStrategy::kMatchingTruncated, 2 * lat + result.lower_bound_s},
      {OrderStrategy::kRotation, ws.rotation_cost()},
      {OrderStrategy::kShortestFirst, stream_bound},
      {OrderStrategy::kRandomOrder, stream_bound},
  }};
  if (options.max_phases > 0 && degree > options.max_phases) cands[0].bound = kInf;
  if (options.max_phases == 1) cands[2].bound = kInf;
  result.candidate_makespan_s[static_cast<size_t>(OrderStrategy::kRotation)] = cands[3].bound;  // exact, and cheap
  std::stable_sort(cands.begin(), cands.end(),
                   [](const Candidate& a, const Candidate& b) { return a.bound < b.bound; });

  double best = kInf;
  size_t best_phases = std::numeric_limits<size_t>::max();
  bool have = false;
  auto evaluate = [&](const Candidate& c) {
    if (c.bound == kInf) return;
    if (!options.evaluate_all && have && c.bound >= best * (1 - 1e-12)) return;
    ws.emit(ws.candidate, c.strategy, options, options.evaluate_all || !have ? kInf : best);
    const double cost = ws.candidate.makespan_s;
    if (cost == kInf) return;
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
  };
  // Rotation first: its cost is exact and cheap, and a finite best lets the others give up early. Then
  // in bound order. Above kTruncationMaxGpus (and without max_phases, which only truncation may meet),
  // truncation only reuses a decomposition that the matching candidate built: decomposing for it alone
  // costs milliseconds there, and it rarely wins (docs/scheduler.md).
  const bool defer_truncation = !options.evaluate_all && options.max_phases <= 0 && n > kTruncationMaxGpus;
  const Candidate* truncation = nullptr;
  for (const Candidate& c : cands)
    if (c.strategy == OrderStrategy::kRotation) evaluate(c);
  for (const Candidate& c : cands) {
    if (c.strategy == OrderStrategy::kRotation) continue;
    if (c.strategy == OrderStrategy::kMatchingTruncated && defer_truncation && !ws.decomposed) {
      truncation = &c;
      continue;
    }
    evaluate(c);
  }
  if (truncation != nullptr && ws.decomposed) evaluate(*truncation);
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

double predict_makespan_s(const TransmissionPlan& plan, const Cluster& cluster, double phase_latency_s,
                          bool exact_fluid) {
  detail::FluidSimulator sim;
  if (!plan.barrier_between_phases) {
    const int n = cluster.num_gpus();
    std::vector<std::vector<uint32_t>> queues(static_cast<size_t>(n));
    for (uint32_t t = 0; t < plan.transfers.size(); ++t)
      queues[static_cast<size_t>(plan.transfers[t].src_gpu)].push_back(t);
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
