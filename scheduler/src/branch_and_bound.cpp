#include "branch_and_bound.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "aurora/config/check.hpp"

namespace aurora::sched::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class Search {
 public:
  Search(const std::vector<const LayerStats*>& layers, const Cluster& cluster, DeploymentMode mode)
      : cluster_(cluster),
        nm_(layers.size()),
        n_(cluster.num_gpus()),
        colocated_(mode == DeploymentMode::kColocated && layers.size() == 2) {
    AURORA_CHECK(nm_ == 1 || nm_ == 2);
    const size_t n = static_cast<size_t>(n_);
    for (size_t m = 0; m < nm_; ++m) {
      const LayerStats& l = *layers[m];
      AURORA_CHECK(l.num_experts == n_ && l.num_shards == n_);
      traffic_[m].resize(n * n);
      work_[m].resize(n);
      for (int i = 0; i < n_; ++i) {
        for (int j = 0; j < n_; ++j)
          traffic_[m][static_cast<size_t>(i) * n + j] = i == j ? 0.0 : static_cast<double>(l.bytes(i, j));
        work_[m][static_cast<size_t>(i)] = static_cast<double>(l.expert_bytes(i)) * l.expert_s_per_byte;
      }
      gate_[m] = aggregate_[m] = 0;
      for (const GpuSpec& g : cluster.gpus) {
        gate_[m] = std::max(gate_[m], l.gate_s / g.compute_speed);
        aggregate_[m] = std::max(aggregate_[m], l.aggregate_s / g.compute_speed);
      }
      send_[m].assign(n, 0.0);
      recv_[m].assign(n, 0.0);
      for (int i = 0; i < n_; ++i)
        for (int j = 0; j < n_; ++j) {
          send_[m][static_cast<size_t>(i)] += traffic_[m][static_cast<size_t>(i) * n + j];
          recv_[m][static_cast<size_t>(j)] += traffic_[m][static_cast<size_t>(i) * n + j];
        }
      gpu_of_[m].assign(n, -1);
      expert_on_[m].assign(n, -1);
    }
    rate_.resize(n * n);
    for (int g = 0; g < n_; ++g)
      for (int h = 0; h < n_; ++h) rate_[static_cast<size_t>(g) * n + h] = cluster.pair_rate(g, h);
    // GPUs grouped by identical spec; same_as_prev_ marks interchangeable neighbours.
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    auto key = [&](int g) {
      const GpuSpec& s = cluster.gpus[static_cast<size_t>(g)];
      // Slowest first: their times dominate, so the bound tightens early.
      return std::make_tuple(s.compute_speed, s.send_bytes_per_s, s.recv_bytes_per_s, s.memory_bytes);
    };
    std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) { return key(a) < key(b); });
    same_as_prev_.assign(n, 0);
    for (size_t k = 1; k < n; ++k) same_as_prev_[k] = key(order_[k]) == key(order_[k - 1]);
    assigned_.assign(n, 0);
  }

  BranchAndBoundResult run(const std::vector<std::vector<int32_t>>& incumbent, double incumbent_cost) {
    best_ = incumbent;
    best_cost_ = incumbent_cost;
    dfs(0);
    BranchAndBoundResult r;
    r.gpu_of = best_;
    r.cost_s = best_cost_;
    r.nodes = nodes_;
    return r;
  }

 private:
  double rate(int g, int h) const { return rate_[static_cast<size_t>(g) * n_ + h]; }

  // Lower bound on the layer time given the GPUs assigned so far (exact when all are assigned).
  double bound() const {
    const size_t n = static_cast<size_t>(n_);
    double max_speed_free = 0, max_send_free = 0, max_recv_free = 0;
    for (int g = 0; g < n_; ++g)
      if (!assigned_[static_cast<size_t>(g)]) {
        const GpuSpec& s = cluster_.gpus[static_cast<size_t>(g)];
        max_speed_free = std::max(max_speed_free, s.compute_speed);
        max_send_free = std::max(max_send_free, s.send_bytes_per_s);
        max_recv_free = std::max(max_recv_free, s.recv_bytes_per_s);
      }
    ModelLayerTiming t[2];
    // Per assigned GPU and model: dispatch row/col and combine row/col time (matching model, optimistic
    // rates towards GPUs not chosen yet).
    double worst[2][4] = {};  // per model: max over GPUs of N row, N col, C row, C col
    double worst_nn = 0, worst_nnc = 0, worst_all = 0;
    for (int g = 0; g < n_; ++g) {
      if (!assigned_[static_cast<size_t>(g)]) continue;
      const GpuSpec& sg = cluster_.gpus[static_cast<size_t>(g)];
      double v[2][4] = {};
      for (size_t m = 0; m < nm_; ++m) {
        const int e = expert_on_[m][static_cast<size_t>(g)];
        const double* row = traffic_[m].data() + static_cast<size_t>(e) * n;
        for (int j = 0; j < n_; ++j) {
          if (j == e) continue;
          const int h = gpu_of_[m][static_cast<size_t>(j)];
          const double out = row[j];                                      // e -> j (dispatch out of g; combine into g)
          const double in = traffic_[m][static_cast<size_t>(j) * n + e];  // j -> e
          const double r_gh = h >= 0 ? rate(g, h) : std::min(sg.send_bytes_per_s, max_recv_free);
          const double r_hg = h >= 0 ? rate(h, g) : std::min(max_send_free, sg.recv_bytes_per_s);
          v[m][0] += out / r_gh;  // N row
          v[m][1] += in / r_hg;   // N col
          v[m][2] += in / r_gh;   // C row (C = N transposed)
          v[m][3] += out / r_hg;  // C col
        }
        t[m].expert_s = std::max(t[m].expert_s, work_[m][static_cast<size_t>(e)] / sg.compute_speed);
        for (int k = 0; k < 4; ++k) worst[m][k] = std::max(worst[m][k], v[m][k]);
      }
      if (nm_ == 2) {
        worst_nn = std::max({worst_nn, v[0][0] + v[1][0], v[0][1] + v[1][1]});
        worst_nnc = std::max({worst_nnc, v[0][0] + v[1][0] + v[0][2], v[0][1] + v[1][1] + v[0][3]});
        worst_all = std::max({worst_all, v[0][0] + v[1][0] + v[0][2] + v[1][2], v[0][1] + v[1][1] + v[0][3] + v[1][3]});
      }
    }
    for (size_t m = 0; m < nm_; ++m) {
      if (max_speed_free > 0)
        for (int e = 0; e < n_; ++e)
          if (gpu_of_[m][static_cast<size_t>(e)] < 0)
            t[m].expert_s = std::max(t[m].expert_s, work_[m][static_cast<size_t>(e)] / max_speed_free);
      t[m].gate_s = gate_[m];
      t[m].aggregate_s = aggregate_[m];
    }
    // Experts not placed yet land on free GPUs: at best at the fastest free port.
    if (max_send_free > 0) {
      for (size_t m = 0; m < nm_; ++m)
        for (int e = 0; e < n_; ++e) {
          if (gpu_of_[m][static_cast<size_t>(e)] >= 0) continue;
          const double s = send_[m][static_cast<size_t>(e)], r = recv_[m][static_cast<size_t>(e)];
          worst[m][0] = std::max(worst[m][0], s / max_send_free);
          worst[m][1] = std::max(worst[m][1], r / max_recv_free);
          worst[m][2] = std::max(worst[m][2], r / max_send_free);
          worst[m][3] = std::max(worst[m][3], s / max_recv_free);
        }
      if (nm_ == 2) {
        // Free a- and b-experts pair up on free GPUs; any pairing's largest sum is at least the sorted
        // (ascending with descending) pairing's (Thm 6.2).
        auto min_max_sum = [&](auto&& x_of, auto&& y_of) {
          xs_.clear();
          ys_.clear();
          for (int e = 0; e < n_; ++e) {
            if (gpu_of_[0][static_cast<size_t>(e)] < 0) xs_.push_back(x_of(e));
            if (gpu_of_[1][static_cast<size_t>(e)] < 0) ys_.push_back(y_of(e));
          }
          std::sort(xs_.begin(), xs_.end());
          std::sort(ys_.begin(), ys_.end(), std::greater<>());
          double v = 0;
          for (size_t k = 0; k < xs_.size(); ++k) v = std::max(v, xs_[k] + ys_[k]);
          return v;
        };
        const auto& as = send_[0];
        const auto& ar = recv_[0];
        const auto& bs = send_[1];
        const auto& br = recv_[1];
        auto at = [](const std::vector<double>& v, int e) { return v[static_cast<size_t>(e)]; };
        worst_nn = std::max(
            {worst_nn, min_max_sum([&](int e) { return at(as, e); }, [&](int e) { return at(bs, e); }) / max_send_free,
             min_max_sum([&](int e) { return at(ar, e); }, [&](int e) { return at(br, e); }) / max_recv_free});
        worst_nnc =
            std::max({worst_nnc,
                      min_max_sum([&](int e) { return at(as, e) + at(ar, e); }, [&](int e) { return at(bs, e); }) /
                          max_send_free,
                      min_max_sum([&](int e) { return at(ar, e) + at(as, e); }, [&](int e) { return at(br, e); }) /
                          max_recv_free});
        const double sum_all =
            min_max_sum([&](int e) { return at(as, e) + at(ar, e); }, [&](int e) { return at(bs, e) + at(br, e); });
        worst_all = std::max(worst_all, sum_all / std::max(max_send_free, max_recv_free));
      }
    }
    const double na = std::max(worst[0][0], worst[0][1]), ca = std::max(worst[0][2], worst[0][3]);
    if (!colocated_) return t[0].gate_s + na + t[0].expert_s + ca + t[0].aggregate_s;
    ColocatedCommTimes c;
    c.na = na;
    c.ca = ca;
    c.nb = std::max(worst[1][0], worst[1][1]);
    c.cb = std::max(worst[1][2], worst[1][3]);
    c.na_nb = worst_nn;
    c.na_nb_ca = worst_nnc;
    c.all = worst_all;
    return colocated_layer_time_s(t[0], t[1], c);
  }

  void dfs(size_t k) {
    ++nodes_;
    if (k == static_cast<size_t>(n_)) {
      const double c = bound();
      if (c < best_cost_ * (1 - 1e-12)) {
        best_cost_ = c;
        for (size_t m = 0; m < nm_; ++m) best_[m] = gpu_of_[m];
      }
      return;
    }
    const int g = order_[k];
    const int min_a = same_as_prev_[k] ? expert_on_[0][static_cast<size_t>(order_[k - 1])] + 1 : 0;
    assigned_[static_cast<size_t>(g)] = 1;
    for (int ea = min_a; ea < n_; ++ea) {
      if (gpu_of_[0][static_cast<size_t>(ea)] >= 0) continue;
      gpu_of_[0][static_cast<size_t>(ea)] = g;
      expert_on_[0][static_cast<size_t>(g)] = ea;
      if (nm_ == 1) {
        if (bound() < best_cost_ * (1 - 1e-12)) dfs(k + 1);
      } else {
        for (int eb = 0; eb < n_; ++eb) {
          if (gpu_of_[1][static_cast<size_t>(eb)] >= 0) continue;
          gpu_of_[1][static_cast<size_t>(eb)] = g;
          expert_on_[1][static_cast<size_t>(g)] = eb;
          if (bound() < best_cost_ * (1 - 1e-12)) dfs(k + 1);
          gpu_of_[1][static_cast<size_t>(eb)] = -1;
          expert_on_[1][static_cast<size_t>(g)] = -1;
        }
      }
      gpu_of_[0][static_cast<size_t>(ea)] = -1;
      expert_on_[0][static_cast<size_t>(g)] = -1;
    }
    assigned_[static_cast<size_t>(g)] = 0;
  }

  const Cluster& cluster_;
  size_t nm_;
  int n_;
  bool colocated_;
  std::vector<double> traffic_[2], work_[2], send_[2], recv_[2], rate_;
  mutable std::vector<double> xs_, ys_;
  double gate_[2] = {}, aggregate_[2] = {};
  std::vector<int32_t> gpu_of_[2], expert_on_[2];
  std::vector<int> order_;
  std::vector<char> same_as_prev_, assigned_;
  std::vector<std::vector<int32_t>> best_;
  double best_cost_ = kInf;
  uint64_t nodes_ = 0;
};

}  // namespace

BranchAndBoundResult branch_and_bound(const std::vector<const LayerStats*>& layers, const Cluster& cluster,
                                      DeploymentMode mode, const std::vector<std::vector<int32_t>>& incumbent,
                                      double incumbent_cost_s) {
  Search search(layers, cluster, mode);
  return search.run(incumbent, incumbent_cost_s);
}

}  // namespace aurora::sched::detail
