#include "online/deployment_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/deployment_planner.hpp"
#include "aurora/scheduler/simulator.hpp"

namespace aurora::runtime {
namespace {

using Owners = std::vector<std::vector<std::vector<int32_t>>>;  // [model][layer][expert]

// One SwiGLU expert on one token: 6 * hidden * intermediate flops at an assumed 100 Tflop/s,
// until the ranks have measured their own.
double assumed_seconds_per_row(const config::ModelConfig& c) {
  return 6.0 * c.hidden_size * c.moe_intermediate_size / 100e12;
}

// Expert time per row on a rank of speed 1: each rank's measured expert seconds scaled by its speed
// (a slow rank's rows take 1/speed as long; counting them at face value and then dividing by the
// speed again in the simulator would charge the slowness twice). Falls back to the all-rank mean,
// then to the assumed rate.
double reference_seconds_per_row(const WindowStats& s, const std::vector<double>& speeds,
                                 const config::ModelConfig& c) {
  double scaled = 0, rows = 0;
  if (s.ranks.size() == speeds.size()) {
    for (size_t r = 0; r < s.ranks.size(); ++r) {
      scaled += s.ranks[r].expert_seconds * speeds[r];
      rows += s.ranks[r].rows;
    }
  }
  if (rows > 0 && scaled > 0) return scaled / rows;
  return s.expert_seconds_per_row > 0 ? s.expert_seconds_per_row : assumed_seconds_per_row(c);
}

struct Frame {
  std::vector<sched::ModelStats> models;
  std::vector<std::vector<int32_t>> layer_of;  // [model][moe index] -> layer
  sched::Cluster cluster;
  sched::DeploymentMode mode = sched::DeploymentMode::kExclusive;
  int32_t num_ranks = 0;
};

Frame make_frame(const PolicyInput& in) {
  Frame f;
  const int32_t n = static_cast<int32_t>(in.rank_speeds.size());
  f.num_ranks = n;
  for (double speed : in.rank_speeds) f.cluster.gpus.push_back(sched::GpuSpec::from_gbps(in.link_gbps, speed));
  for (const auto& pm : in.models) {
    const auto& c = *pm.config;
    sched::ModelStats ms;
    ms.shard_home = sched::ShardHome::kOnGpu;
    ms.expert_memory_bytes = 3 * int64_t{c.hidden_size} * c.moe_intermediate_size * in.bytes_per_weight;
    const double row_bytes = static_cast<double>(c.token_bytes());
    const double s_per_row = reference_seconds_per_row(pm.stats, in.rank_speeds, c);
    std::vector<int32_t> layers;
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
      sched::LayerStats ls;
      ls.num_shards = n;
      ls.num_experts = c.num_experts;
      ls.traffic.assign(static_cast<size_t>(n) * c.num_experts, 0);
      const auto& re = pm.stats.rank_expert.size() > static_cast<size_t>(l)
                           ? pm.stats.rank_expert[static_cast<size_t>(l)]
                           : std::vector<double>{};
      if (re.size() == ls.traffic.size()) {
        for (size_t i = 0; i < re.size(); ++i) ls.traffic[i] = std::llround(re[i] * row_bytes);
      }
      ls.expert_s_per_byte = s_per_row / row_bytes;
      ms.layers.push_back(std::move(ls));
      layers.push_back(l);
    }
    f.models.push_back(std::move(ms));
    f.layer_of.push_back(std::move(layers));
  }
  if (in.colocated && f.models.size() == 2 && f.models[0].layers.size() == f.models[1].layers.size()) {
    f.mode = sched::DeploymentMode::kColocated;
  }
  return f;
}

sched::Deployment to_deployment(const Frame& f, const Owners& owners) {
  sched::Deployment d;
  for (size_t m = 0; m < f.models.size(); ++m) {
    std::vector<std::vector<int32_t>> per_moe;
    for (int32_t l : f.layer_of[m]) per_moe.push_back(owners[m][static_cast<size_t>(l)]);
    d.models.push_back(sched::Deployment::single(per_moe));
  }
  return d;
}

double simulate_s(const Frame& f, const Owners& owners, double phase_latency_s) {
  if (f.models.empty()) return 0.0;
  bool any = false;
  for (const auto& m : f.models) any = any || !m.layers.empty();
  if (!any) return 0.0;
  sched::CommModel comm;
  comm.kind = sched::CommModel::Kind::kPlanned;
  comm.order.phase_latency_s = phase_latency_s;
  return sched::simulate(f.models, to_deployment(f, owners), f.cluster, f.mode, comm).inference_time_s;
}

bool has_traffic(const sched::LayerStats& ls) {
  for (int64_t b : ls.traffic) {
    if (b > 0) return true;
  }
  return false;
}

// Minimum-cost perfect assignment (Hungarian method with potentials), n x n, row -> column.
std::vector<int32_t> min_cost_assignment(const std::vector<double>& cost, int32_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(static_cast<size_t>(n) + 1, 0), v(static_cast<size_t>(n) + 1, 0);
  std::vector<int32_t> p(static_cast<size_t>(n) + 1, 0), way(static_cast<size_t>(n) + 1, 0);
  for (int32_t i = 1; i <= n; ++i) {
    p[0] = i;
    int32_t j0 = 0;
    std::vector<double> minv(static_cast<size_t>(n) + 1, inf);
    std::vector<char> used(static_cast<size_t>(n) + 1, 0);
    do {
      used[static_cast<size_t>(j0)] = 1;
      const int32_t i0 = p[static_cast<size_t>(j0)];
      double delta = inf;
      int32_t j1 = 0;
      for (int32_t j = 1; j <= n; ++j) {
        if (used[static_cast<size_t>(j)]) continue;
        const double cur =
            cost[static_cast<size_t>(i0 - 1) * n + (j - 1)] - u[static_cast<size_t>(i0)] - v[static_cast<size_t>(j)];
        if (cur < minv[static_cast<size_t>(j)]) {
          minv[static_cast<size_t>(j)] = cur;
          way[static_cast<size_t>(j)] = j0;
        }
        if (minv[static_cast<size_t>(j)] < delta) {
          delta = minv[static_cast<size_t>(j)];
          j1 = j;
        }
      }
      for (int32_t j = 0; j <= n; ++j) {
        if (used[static_cast<size_t>(j)]) {
          u[static_cast<size_t>(p[static_cast<size_t>(j)])] += delta;
          v[static_cast<size_t>(j)] -= delta;
        } else {
          minv[static_cast<size_t>(j)] -= delta;
        }
      }
      j0 = j1;
    } while (p[static_cast<size_t>(j0)] != 0);
    do {
      const int32_t j1 = way[static_cast<size_t>(j0)];
      p[static_cast<size_t>(j0)] = p[static_cast<size_t>(j1)];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int32_t> col_of_row(static_cast<size_t>(n), 0);
  for (int32_t j = 1; j <= n; ++j) col_of_row[static_cast<size_t>(p[static_cast<size_t>(j)] - 1)] = j - 1;
  return col_of_row;
}

// The groups of layers planned together: one per MoE layer index when colocated (both models'
// layer k share the ranks), else one per (model, layer).
std::vector<std::vector<std::pair<size_t, int32_t>>> layer_groups(const Frame& f) {
  std::vector<std::vector<std::pair<size_t, int32_t>>> groups;
  if (f.mode == sched::DeploymentMode::kColocated) {
    for (size_t k = 0; k < f.layer_of[0].size(); ++k) groups.push_back({{0, f.layer_of[0][k]}, {1, f.layer_of[1][k]}});
  } else {
    for (size_t m = 0; m < f.layer_of.size(); ++m) {
      for (int32_t l : f.layer_of[m]) groups.push_back({{m, l}});
    }
  }
  return groups;
}

// Relabels the candidate's ranks, per layer group and among ranks of equal speed, so that as many
// experts as possible stay where they are (rank labels carry no meaning on identical ranks).
void relabel_to_current(const Frame& f, const PolicyInput& in, Owners& cand) {
  const int32_t n = f.num_ranks;
  const double forbidden = 1e12;
  for (const auto& group : layer_groups(f)) {
    std::vector<double> cost(static_cast<size_t>(n) * n, 0.0);
    for (int32_t i = 0; i < n; ++i) {
      for (int32_t j = 0; j < n; ++j) {
        if (in.rank_speeds[static_cast<size_t>(i)] != in.rank_speeds[static_cast<size_t>(j)])
          cost[static_cast<size_t>(i) * n + j] = forbidden;
      }
    }
    for (const auto& [m, l] : group) {
      const auto& now = in.models[m].owners[static_cast<size_t>(l)];
      const auto& c = cand[m][static_cast<size_t>(l)];
      for (size_t e = 0; e < c.size(); ++e) cost[static_cast<size_t>(c[e]) * n + now[e]] -= 1.0;
    }
    const std::vector<int32_t> to = min_cost_assignment(cost, n);
    for (const auto& [m, l] : group) {
      for (auto& r : cand[m][static_cast<size_t>(l)]) r = to[static_cast<size_t>(r)];
    }
  }
}

// Improves the placement in force by moves and swaps off the slowest rank of each layer group
// (load model: the bytes a rank's experts process over its speed).
Owners incremental(const Frame& f, const PolicyInput& in) {
  Owners out;
  for (const auto& pm : in.models) out.push_back(pm.owners);
  const int32_t n = f.num_ranks;
  for (const auto& group : layer_groups(f)) {
    struct Item {
      size_t model;
      int32_t layer, expert;
      double load;
    };
    std::vector<Item> items;
    bool any = false;
    for (const auto& [m, l] : group) {
      const size_t k =
          static_cast<size_t>(std::find(f.layer_of[m].begin(), f.layer_of[m].end(), l) - f.layer_of[m].begin());
      const sched::LayerStats& ls = f.models[m].layers[k];
      any = any || has_traffic(ls);
      for (int32_t e = 0; e < ls.num_experts; ++e) {
        items.push_back(Item{m, l, e, static_cast<double>(ls.expert_bytes(e)) * ls.expert_s_per_byte});
      }
    }
    if (!any) continue;
    auto owner = [&](const Item& it) -> int32_t& {
      return out[it.model][static_cast<size_t>(it.layer)][static_cast<size_t>(it.expert)];
    };
    std::vector<double> time(static_cast<size_t>(n), 0.0);
    std::vector<std::vector<size_t>> on_rank(static_cast<size_t>(n));
    auto recompute = [&] {
      std::fill(time.begin(), time.end(), 0.0);
      for (auto& v : on_rank) v.clear();
      for (size_t i = 0; i < items.size(); ++i) {
        const int32_t r = owner(items[i]);
        time[static_cast<size_t>(r)] += items[i].load / in.rank_speeds[static_cast<size_t>(r)];
        on_rank[static_cast<size_t>(r)].push_back(i);
      }
    };
    recompute();
    for (size_t iter = 0; iter < items.size(); ++iter) {
      const int32_t slow = static_cast<int32_t>(std::max_element(time.begin(), time.end()) - time.begin());
      const double before = time[static_cast<size_t>(slow)];
      const double vs = in.rank_speeds[static_cast<size_t>(slow)];
      double best = before * (1.0 - 1e-9);
      int64_t best_a = -1, best_b = -1;
      int32_t best_rank = -1;
      for (size_t a : on_rank[static_cast<size_t>(slow)]) {
        const double sa = items[a].load;
        for (int32_t r = 0; r < n; ++r) {
          if (r == slow) continue;
          const double vr = in.rank_speeds[static_cast<size_t>(r)];
          const double move = std::max(before - sa / vs, time[static_cast<size_t>(r)] + sa / vr);
          if (move < best) {
            best = move;
            best_a = static_cast<int64_t>(a);
            best_b = -1;
            best_rank = r;
          }
          for (size_t b : on_rank[static_cast<size_t>(r)]) {
            if (items[b].model != items[a].model) continue;
            const double sb = items[b].load;
            const double swap = std::max(before + (sb - sa) / vs, time[static_cast<size_t>(r)] + (sa - sb) / vr);
            if (swap < best) {
              best = swap;
              best_a = static_cast<int64_t>(a);
              best_b = static_cast<int64_t>(b);
              best_rank = r;
            }
          }
        }
      }
      if (best_a < 0) break;
      if (best_b >= 0) owner(items[static_cast<size_t>(best_b)]) = slow;
      owner(items[static_cast<size_t>(best_a)]) = best_rank;
      recompute();
    }
  }
  return out;
}

int64_t count_moves(const PolicyInput& in, const Owners& cand) {
  int64_t moves = 0;
  for (size_t m = 0; m < in.models.size(); ++m) {
    for (size_t l = 0; l < cand[m].size(); ++l) {
      for (size_t e = 0; e < cand[m][l].size(); ++e) moves += cand[m][l][e] != in.models[m].owners[l][e];
    }
  }
  return moves;
}

int64_t move_bytes(const PolicyInput& in, const Owners& cand) {
  int64_t bytes = 0;
  for (size_t m = 0; m < in.models.size(); ++m) {
    const auto& c = *in.models[m].config;
    const int64_t per_expert = 3 * int64_t{c.hidden_size} * c.moe_intermediate_size * in.bytes_per_weight;
    for (size_t l = 0; l < cand[m].size(); ++l) {
      for (size_t e = 0; e < cand[m][l].size(); ++e) bytes += (cand[m][l][e] != in.models[m].owners[l][e]) * per_expert;
    }
  }
  return bytes;
}

}  // namespace

std::vector<double> measured_rank_speeds(const WindowStats& stats, const std::vector<double>& previous,
                                         double tolerance) {
  const size_t n = stats.ranks.size();
  std::vector<double> rate(n, 0.0);
  for (size_t r = 0; r < n; ++r) {
    const auto& rk = stats.ranks[r];
    if (rk.expert_seconds > 0 && rk.rows > 0) rate[r] = rk.rows / rk.expert_seconds;
  }
  std::vector<double> sorted;
  for (double v : rate) {
    if (v > 0) sorted.push_back(v);
  }
  // A rank without rows in the window (the planner gave it only cold experts) keeps what it was
  // last measured at: forgetting that it is slow would put hot experts back on it.
  std::vector<double> speeds = previous.size() == n ? previous : std::vector<double>(n, 1.0);
  if (sorted.size() < 2) return speeds;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  for (size_t r = 0; r < n; ++r) {
    if (rate[r] <= 0) continue;
    const double s = rate[r] / median;
    speeds[r] = std::abs(s - 1.0) <= tolerance ? 1.0 : std::max(0.05, std::round(s * 20.0) / 20.0);
  }
  return speeds;
}

double predict_moe_step_s(const PolicyInput& input, const Owners& owners) {
  return simulate_s(make_frame(input), owners, input.phase_latency_s);
}

Result<Proposal> propose_deployment(const PolicyInput& in) {
  if (in.models.empty()) return Error::invalid("models", "must not be empty");
  const int32_t n = static_cast<int32_t>(in.rank_speeds.size());
  if (n < 1) return Error::invalid("rank_speeds", "must list the ranks");
  for (const auto& pm : in.models) {
    AURORA_CHECK(pm.config != nullptr && pm.owners.size() == static_cast<size_t>(pm.config->num_layers));
  }
  const Frame f = make_frame(in);
  Proposal p;
  Owners current;
  for (const auto& pm : in.models) current.push_back(pm.owners);
  p.current_s = simulate_s(f, current, in.phase_latency_s);

  sched::DeploymentOptions opt;
  opt.mode = f.mode;
  auto planned = sched::plan_deployment(f.models, f.cluster, opt);
  if (!planned) return planned.error();
  Owners fresh = current;
  for (size_t m = 0; m < f.models.size(); ++m) {
    for (size_t k = 0; k < f.layer_of[m].size(); ++k) {
      if (!has_traffic(f.models[m].layers[k])) continue;  // no data: keep what is there
      auto& owner = fresh[m][static_cast<size_t>(f.layer_of[m][k])];
      for (size_t e = 0; e < owner.size(); ++e)
        owner[e] = planned->models[m].gpu_of(static_cast<int>(k), static_cast<int>(e));
    }
  }
  relabel_to_current(f, in, fresh);
  p.fresh_s = simulate_s(f, fresh, in.phase_latency_s);
  p.fresh_moves = count_moves(in, fresh);

  const Owners inc = incremental(f, in);
  const double inc_s = simulate_s(f, inc, in.phase_latency_s);

  auto net_benefit = [&](double s, const Owners& o) {
    const double gain = (p.current_s - s) * in.steps_per_second * in.amortize_s;
    const double cost = static_cast<double>(move_bytes(in, o)) / std::max(1.0, in.migration_bytes_per_s);
    return gain - in.cost_margin * cost;
  };
  const double fresh_net = net_benefit(p.fresh_s, fresh), inc_net = net_benefit(inc_s, inc);
  const int64_t inc_moves = count_moves(in, inc);
  const bool take_inc = inc_net > fresh_net || (inc_net == fresh_net && inc_moves < p.fresh_moves);
  p.owners = take_inc ? inc : fresh;
  p.candidate_s = take_inc ? inc_s : p.fresh_s;
  p.kind = take_inc ? "incremental" : "fresh";
  // The reference is the better of the two plans made from scratch or from here.
  p.fresh_s = std::min(p.fresh_s, inc_s);
  p.moves = count_moves(in, p.owners);
  p.move_bytes = move_bytes(in, p.owners);
  p.migration_s = static_cast<double>(p.move_bytes) / std::max(1.0, in.migration_bytes_per_s);
  return p;
}

}  // namespace aurora::runtime
