#include "aurora/scheduler/deployment_planner.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/matching.hpp"
#include "aurora/scheduler/placement.hpp"
#include "branch_and_bound.hpp"

namespace aurora::sched {
namespace {

// The paper's setting: every model has one expert per GPU, shards move with their experts.
bool one_expert_per_gpu(const std::vector<ModelStats>& models, const Cluster& cluster) {
  for (const ModelStats& m : models) {
    if (m.shard_home != ShardHome::kWithExpert) return false;
    for (const LayerStats& l : m.layers)
      if (l.num_experts != cluster.num_gpus() || l.num_shards != l.num_experts) return false;
  }
  return true;
}

// GPUs ordered by capability (paper footnote 2: compute speed and bandwidth together); ties by index.
std::vector<int32_t> gpus_by_capability(const Cluster& cluster) {
  std::vector<int32_t> g(static_cast<size_t>(cluster.num_gpus()));
  std::iota(g.begin(), g.end(), 0);
  auto bw = [&](int32_t i) {
    const GpuSpec& s = cluster.gpus[static_cast<size_t>(i)];
    return std::min(s.send_bytes_per_s, s.recv_bytes_per_s);
  };
  std::stable_sort(g.begin(), g.end(), [&](int32_t a, int32_t b) {
    const double sa = cluster.gpus[static_cast<size_t>(a)].compute_speed,
                 sb = cluster.gpus[static_cast<size_t>(b)].compute_speed;
    if (sa != sb) return sa > sb;
    return bw(a) > bw(b);
  });
  return g;
}

// A one-layer view of some models, so that searches evaluate only the layer they change.
struct LayerFrame {
  std::vector<ModelStats> models;  // one layer each
  Deployment deployment;           // one layer each, one replica per expert
};

LayerFrame make_frame(const std::vector<ModelStats>& models, const std::vector<size_t>& which, size_t layer) {
  LayerFrame f;
  for (size_t m : which) {
    ModelStats one;
    one.name = models[m].name;
    one.shard_home = models[m].shard_home;
    one.expert_memory_bytes = models[m].expert_memory_bytes;
    one.layers.push_back(models[m].layers[layer]);
    ModelDeployment d;
    d.experts.resize(1);
    for (int e = 0; e < one.layers[0].num_experts; ++e) d.experts[0].push_back({Replica{e, 1.0}});
    f.models.push_back(std::move(one));
    f.deployment.models.push_back(std::move(d));
  }
  return f;
}

int32_t& gpu_ref(LayerFrame& f, size_t m, int e) {
  return f.deployment.models[m].experts[0][static_cast<size_t>(e)][0].gpu;
}

double frame_cost(const LayerFrame& f, const Cluster& cluster, DeploymentMode mode) {
  CommModel comm;
  comm.kind = CommModel::Kind::kMatchingBound;
  return simulate_layer(f.models, f.deployment, cluster, mode, comm, 0).time_s;
}

void copy_back(const LayerFrame& f, const std::vector<size_t>& which, size_t layer, Deployment& out) {
  for (size_t k = 0; k < which.size(); ++k) out.models[which[k]].experts[layer] = f.deployment.models[k].experts[0];
}

Deployment empty_deployment(const std::vector<ModelStats>& models) {
  Deployment d;
  for (const ModelStats& m : models) {
    ModelDeployment md;
    md.experts.resize(m.layers.size());
    for (size_t l = 0; l < m.layers.size(); ++l) md.experts[l].assign(static_cast<size_t>(m.layers[l].num_experts), {});
    d.models.push_back(std::move(md));
  }
  return d;
}

// Hill climbing over swaps of one model's experts between two GPUs (and, with two models, of both at once:
// a GPU swap), first improvement, under the frame's full cost.
void local_search(LayerFrame& f, const Cluster& cluster, DeploymentMode mode) {
  const int n = cluster.num_gpus();
  const size_t nm = f.models.size();
  // expert of model m on GPU g (one expert per GPU per model here)
  auto expert_on = [&](size_t m, int g) {
    const auto& ex = f.deployment.models[m].experts[0];
    for (size_t e = 0; e < ex.size(); ++e)
      if (ex[e][0].gpu == g) return static_cast<int>(e);
    return -1;
  };
  double cur = frame_cost(f, cluster, mode);
  for (int iter = 0; iter < 500; ++iter) {
    bool improved = false;
    for (int g = 0; g < n && !improved; ++g)
      for (int h = g + 1; h < n && !improved; ++h)
        for (size_t mask = 1; mask < (size_t{1} << nm) && !improved; ++mask) {
          std::vector<std::pair<int, int>> swapped;  // (model, expert on g), (model, expert on h)
          for (size_t m = 0; m < nm; ++m) {
            if (!(mask >> m & 1)) continue;
            const int eg = expert_on(m, g), eh = expert_on(m, h);
            if (eg >= 0) gpu_ref(f, m, eg) = h;
            if (eh >= 0) gpu_ref(f, m, eh) = g;
            swapped.emplace_back(eg, eh);
          }
          const double c = frame_cost(f, cluster, mode);
          if (c < cur * (1 - 1e-12)) {
            cur = c;
            improved = true;
          } else {
            size_t k = 0;
            for (size_t m = 0; m < nm; ++m) {
              if (!(mask >> m & 1)) continue;
              const auto [eg, eh] = swapped[k++];
              if (eg >= 0) gpu_ref(f, m, eg) = g;
              if (eh >= 0) gpu_ref(f, m, eh) = h;
            }
          }
        }
    if (!improved) break;
  }
}

// Network send and receive bytes of each expert of a one-expert-per-GPU layer (its own diagonal excluded).
void expert_volumes(const LayerStats& l, std::vector<double>& send, std::vector<double>& recv) {
  const int n = l.num_experts;
  send.assign(static_cast<size_t>(n), 0.0);
  recv.assign(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (i != j) {
        send[static_cast<size_t>(i)] += static_cast<double>(l.bytes(i, j));
        recv[static_cast<size_t>(j)] += static_cast<double>(l.bytes(i, j));
      }
}

// Aurora §6.2: pairing of model a's expert i with model b's expert pair[i].
std::vector<int32_t> pair_experts(const LayerStats& a, const LayerStats& b) {
  const int n = a.num_experts;
  std::vector<double> as, ar, bs, br;
  expert_volumes(a, as, ar);
  expert_volumes(b, bs, br);
  std::vector<int32_t> pair(static_cast<size_t>(n));
  if (as == ar && bs == br) {
    // Case I (Thm 6.2): a ascending with b descending.
    std::vector<int32_t> ia(static_cast<size_t>(n)), ib(static_cast<size_t>(n));
    std::iota(ia.begin(), ia.end(), 0);
    std::iota(ib.begin(), ib.end(), 0);
    std::stable_sort(ia.begin(), ia.end(),
                     [&](int32_t x, int32_t y) { return as[static_cast<size_t>(x)] < as[static_cast<size_t>(y)]; });
    std::stable_sort(ib.begin(), ib.end(),
                     [&](int32_t x, int32_t y) { return bs[static_cast<size_t>(x)] > bs[static_cast<size_t>(y)]; });
    for (int k = 0; k < n; ++k) pair[static_cast<size_t>(ia[static_cast<size_t>(k)])] = ib[static_cast<size_t>(k)];
    return pair;
  }
  // Case II: bottleneck perfect matching on w(i, j) = max(send_i + send_j, recv_i + recv_j).
  std::vector<double> w(static_cast<size_t>(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      w[static_cast<size_t>(i) * n + j] = std::max(as[static_cast<size_t>(i)] + bs[static_cast<size_t>(j)],
                                                   ar[static_cast<size_t>(i)] + br[static_cast<size_t>(j)]);
  return bottleneck_perfect_matching(w, n).right_of_left;
}

// Aurora §7 step 2: which GPU hosts each pair. Weight: the Table 2 recurrence evaluated for that pair alone
// on that GPU (its compute at the GPU's speed, its send/receive volumes at the GPU's bandwidths).
std::vector<int32_t> pairs_to_gpus(const LayerStats& a, const LayerStats& b, const std::vector<int32_t>& pair,
                                   const Cluster& cluster) {
  const int n = a.num_experts;
  std::vector<double> as, ar, bs, br;
  expert_volumes(a, as, ar);
  expert_volumes(b, bs, br);
  std::vector<double> w(static_cast<size_t>(n) * n);
  for (int g = 0; g < n; ++g) {
    const GpuSpec& s = cluster.gpus[static_cast<size_t>(g)];
    for (int i = 0; i < n; ++i) {
      const int j = pair[static_cast<size_t>(i)];
      ModelLayerTiming ta, tb;
      ta.gate_s = a.gate_s / s.compute_speed;
      ta.aggregate_s = a.aggregate_s / s.compute_speed;
      ta.expert_s = static_cast<double>(a.expert_bytes(i)) * a.expert_s_per_byte / s.compute_speed;
      tb.gate_s = b.gate_s / s.compute_speed;
      tb.aggregate_s = b.aggregate_s / s.compute_speed;
      tb.expert_s = static_cast<double>(b.expert_bytes(j)) * b.expert_s_per_byte / s.compute_speed;
      const double sa = as[static_cast<size_t>(i)], ra = ar[static_cast<size_t>(i)];
      const double sb = bs[static_cast<size_t>(j)], rb = br[static_cast<size_t>(j)];
      auto t = [&](double snd, double rcv) { return std::max(snd / s.send_bytes_per_s, rcv / s.recv_bytes_per_s); };
      ColocatedCommTimes c;
      c.na = t(sa, ra);
      c.nb = t(sb, rb);
      c.ca = t(ra, sa);
      c.cb = t(rb, sb);
      c.na_nb = t(sa + sb, ra + rb);
      c.na_nb_ca = t(sa + sb + ra, ra + rb + sa);
      c.all = t(sa + sb + ra + rb, sa + sb + ra + rb);
      w[static_cast<size_t>(g) * n + i] = colocated_layer_time_s(ta, tb, c);
    }
  }
  const std::vector<int32_t> pair_of_gpu = bottleneck_perfect_matching(w, n).right_of_left;
  std::vector<int32_t> gpu_of_pair(static_cast<size_t>(n));
  for (int g = 0; g < n; ++g) gpu_of_pair[static_cast<size_t>(pair_of_gpu[static_cast<size_t>(g)])] = g;
  return gpu_of_pair;
}

Result<void> check_shapes(const std::vector<ModelStats>& models, const Cluster& cluster, DeploymentMode mode) {
  if (models.empty()) return Error::invalid("models", "must not be empty");
  if (mode == DeploymentMode::kColocated) {
    if (models.size() != 2)
      return Error::invalid("models", "colocated mode takes exactly 2 models, got " + std::to_string(models.size()));
    if (models[0].layers.size() != models[1].layers.size())
      return Error::invalid("models[1].layers", "colocated models must have the same number of layers (" +
                                                    std::to_string(models[0].layers.size()) + "), got " +
                                                    std::to_string(models[1].layers.size()));
  }
  for (size_t m = 0; m < models.size(); ++m)
    for (size_t l = 0; l < models[m].layers.size(); ++l) {
      const LayerStats& ls = models[m].layers[l];
      const std::string field = "models[" + std::to_string(m) + "].layers[" + std::to_string(l) + "]";
      if (models[m].shard_home == ShardHome::kOnGpu && ls.num_shards != cluster.num_gpus())
        return Error::invalid(field, "gpu-form traffic must have one row per GPU (" +
                                         std::to_string(cluster.num_gpus()) + "), got " +
                                         std::to_string(ls.num_shards));
      if (models[m].shard_home == ShardHome::kWithExpert && ls.num_shards != ls.num_experts)
        return Error::invalid(field, "experts-form traffic must be square");
    }
  return {};
}

// Many experts per GPU: balanced placement per layer (both models together when colocated).
Result<Deployment> place_many(const std::vector<ModelStats>& models, const Cluster& cluster,
                              const DeploymentOptions& options) {
  Deployment out = empty_deployment(models);
  size_t num_layers = 0;
  for (const ModelStats& m : models) num_layers = std::max(num_layers, m.layers.size());
  // Memory is split evenly over the layers (every layer needs its experts resident).
  Cluster per_layer = cluster;
  for (GpuSpec& g : per_layer.gpus)
    if (g.memory_bytes > 0) g.memory_bytes /= static_cast<int64_t>(std::max<size_t>(1, num_layers));
  std::vector<std::vector<size_t>> groups;
  if (options.mode == DeploymentMode::kColocated) {
    groups.push_back({0, 1});
  } else {
    for (size_t m = 0; m < models.size(); ++m) groups.push_back({m});
  }
  for (const auto& group : groups)
    for (size_t l = 0; l < num_layers; ++l) {
      ExpertPlacementProblem p;
      std::vector<std::pair<size_t, int>> who;  // item -> (model, expert)
      for (size_t m : group) {
        if (l >= models[m].layers.size()) continue;
        const LayerStats& ls = models[m].layers[l];
        for (int e = 0; e < ls.num_experts; ++e) {
          // Time units: bytes processed times the model's per-byte FFN time.
          p.expert_tokens.push_back(static_cast<double>(ls.expert_bytes(e)) * ls.expert_s_per_byte * 1e6);
          p.expert_memory_bytes.push_back(models[m].expert_memory_bytes);
          who.emplace_back(m, e);
        }
      }
      if (who.empty()) continue;
      p.compute_s_per_token = 1e-6;
      p.bytes_per_token = 0;  // traffic is balanced with compute: both follow the expert's bytes
      p.max_replicas_per_expert = options.max_replicas_per_expert;
      p.max_extra_replicas = options.max_extra_replicas;
      auto placed = place_experts(p, per_layer);
      if (!placed) {
        Error e = placed.error();
        e.message = "layer " + std::to_string(l) + ": " + e.message;
        return e;
      }
      for (size_t k = 0; k < who.size(); ++k) {
        auto& reps = out.models[who[k].first].experts[l][static_cast<size_t>(who[k].second)];
        for (size_t r = 0; r < placed->gpus_of_expert[k].size(); ++r)
          reps.push_back(Replica{placed->gpus_of_expert[k][r], placed->share_of_replica[k][r]});
      }
    }
  return out;
}

Result<void> check_memory(const std::vector<ModelStats>& models, const Deployment& d, const Cluster& cluster) {
  const std::vector<int64_t> used = gpu_memory_bytes(models, d, cluster.num_gpus());
  for (int g = 0; g < cluster.num_gpus(); ++g) {
    const int64_t cap = cluster.gpus[static_cast<size_t>(g)].memory_bytes;
    if (cap > 0 && used[static_cast<size_t>(g)] > cap)
      return Error::invalid("gpus[" + std::to_string(g) + "].memory_gb",
                            "models do not fit: GPU " + std::to_string(g) + " needs " +
                                std::to_string(used[static_cast<size_t>(g)]) + " bytes, has " + std::to_string(cap));
  }
  return {};
}

}  // namespace

Result<Deployment> plan_deployment(const std::vector<ModelStats>& models, const Cluster& cluster,
                                   const DeploymentOptions& options) {
  if (auto ok = check_shapes(models, cluster, options.mode); !ok) return ok.error();
  if (!one_expert_per_gpu(models, cluster) || options.max_extra_replicas > 0) {
    auto d = place_many(models, cluster, options);
    if (!d) return d.error();
    if (auto ok = check_memory(models, *d, cluster); !ok) return ok.error();
    return d;
  }
  const int n = cluster.num_gpus();
  Deployment out = identity_deployment(models, cluster, options.mode);
  const size_t num_layers = models[0].layers.size();
  if (options.mode == DeploymentMode::kExclusive) {
    if (!cluster.homogeneous()) {
      // Thm 5.1: experts by load, descending, onto GPUs by capability, descending; then swap search.
      const std::vector<int32_t> gpus = gpus_by_capability(cluster);
      for (size_t m = 0; m < models.size(); ++m)
        for (size_t l = 0; l < models[m].layers.size(); ++l) {
          const LayerStats& ls = models[m].layers[l];
          std::vector<int32_t> experts(static_cast<size_t>(n));
          std::iota(experts.begin(), experts.end(), 0);
          std::stable_sort(experts.begin(), experts.end(),
                           [&](int32_t x, int32_t y) { return ls.expert_bytes(x) > ls.expert_bytes(y); });
          LayerFrame f = make_frame(models, {m}, l);
          for (int k = 0; k < n; ++k) gpu_ref(f, 0, experts[static_cast<size_t>(k)]) = gpus[static_cast<size_t>(k)];
          if (options.local_search) local_search(f, cluster, options.mode);
          copy_back(f, {m}, l, out);
        }
    }
  } else {
    for (size_t l = 0; l < num_layers; ++l) {
      const LayerStats& a = models[0].layers[l];
      const LayerStats& b = models[1].layers[l];
      const std::vector<int32_t> pair = pair_experts(a, b);
      std::vector<int32_t> gpu_of_pair(static_cast<size_t>(n));
      std::iota(gpu_of_pair.begin(), gpu_of_pair.end(), 0);
      if (!cluster.homogeneous()) gpu_of_pair = pairs_to_gpus(a, b, pair, cluster);
      LayerFrame f = make_frame(models, {0, 1}, l);
      for (int i = 0; i < n; ++i) {
        gpu_ref(f, 0, i) = gpu_of_pair[static_cast<size_t>(i)];
        gpu_ref(f, 1, pair[static_cast<size_t>(i)]) = gpu_of_pair[static_cast<size_t>(i)];
      }
      if (options.local_search) local_search(f, cluster, options.mode);
      copy_back(f, {0, 1}, l, out);
    }
    if (options.consider_packing) {
      Deployment packed = lina_deployment(models, cluster);
      if (check_memory(models, packed, cluster).ok() && deployment_cost_s(models, packed, cluster, options.mode) <
                                                            deployment_cost_s(models, out, cluster, options.mode))
        out = std::move(packed);
    }
  }
  if (auto ok = check_memory(models, out, cluster); !ok) return ok.error();
  return out;
}

Deployment identity_deployment(const std::vector<ModelStats>& models, const Cluster& cluster, DeploymentMode /*mode*/) {
  Deployment d = empty_deployment(models);
  const int n = cluster.num_gpus();
  for (size_t m = 0; m < models.size(); ++m)
    for (size_t l = 0; l < models[m].layers.size(); ++l)
      for (int e = 0; e < models[m].layers[l].num_experts; ++e)
        d.models[m].experts[l][static_cast<size_t>(e)] = {Replica{e % n, 1.0}};
  return d;
}

Deployment random_deployment(const std::vector<ModelStats>& models, const Cluster& cluster, DeploymentMode /*mode*/,
                             uint64_t seed) {
  // Each model's experts dealt onto GPUs in a random order, evenly (a random permutation when one per GPU).
  Deployment d = empty_deployment(models);
  std::mt19937_64 rng(seed);
  const int n = cluster.num_gpus();
  for (size_t m = 0; m < models.size(); ++m)
    for (size_t l = 0; l < models[m].layers.size(); ++l) {
      const int E = models[m].layers[l].num_experts;
      std::vector<int32_t> slots(static_cast<size_t>(E));
      for (int e = 0; e < E; ++e) slots[static_cast<size_t>(e)] = e % n;
      for (size_t k = slots.size(); k > 1; --k) std::swap(slots[k - 1], slots[static_cast<size_t>(rng() % k)]);
      for (int e = 0; e < E; ++e)
        d.models[m].experts[l][static_cast<size_t>(e)] = {Replica{slots[static_cast<size_t>(e)], 1.0}};
    }
  return d;
}

Deployment lina_deployment(const std::vector<ModelStats>& models, const Cluster& cluster) {
  Deployment d = empty_deployment(models);
  const int n = cluster.num_gpus();
  const std::vector<int32_t> gpus = gpus_by_capability(cluster);
  const size_t nm = models.size();
  for (size_t m = 0; m < nm; ++m) {
    // Model m gets a contiguous slice of the GPUs ordered by capability.
    const int lo = static_cast<int>(m) * n / static_cast<int>(nm);
    const int hi = static_cast<int>(m + 1) * n / static_cast<int>(nm);
    const int width = std::max(1, hi - lo);
    for (size_t l = 0; l < models[m].layers.size(); ++l) {
      const LayerStats& ls = models[m].layers[l];
      std::vector<int32_t> experts(static_cast<size_t>(ls.num_experts));
      std::iota(experts.begin(), experts.end(), 0);
      std::stable_sort(experts.begin(), experts.end(),
                       [&](int32_t x, int32_t y) { return ls.expert_bytes(x) > ls.expert_bytes(y); });
      // Snake order: with two experts per GPU this pairs the hottest with the coldest.
      for (size_t k = 0; k < experts.size(); ++k) {
        const int round = static_cast<int>(k) / width, pos = static_cast<int>(k) % width;
        const int slot = round % 2 == 0 ? pos : width - 1 - pos;
        d.models[m].experts[l][static_cast<size_t>(experts[k])] = {Replica{gpus[static_cast<size_t>(lo + slot)], 1.0}};
      }
    }
  }
  return d;
}

double deployment_cost_s(const std::vector<ModelStats>& models, const Deployment& deployment, const Cluster& cluster,
                         DeploymentMode mode) {
  CommModel comm;
  comm.kind = CommModel::Kind::kMatchingBound;
  return simulate(models, deployment, cluster, mode, comm).inference_time_s;
}

Result<ExhaustiveResult> exhaustive_deployment(const std::vector<ModelStats>& models, const Cluster& cluster,
                                               DeploymentMode mode) {
  if (auto ok = check_shapes(models, cluster, mode); !ok) return ok.error();
  if (!one_expert_per_gpu(models, cluster))
    return Error::invalid("models", "the exhaustive optimum needs one expert per GPU per model (experts-form traffic)");
  if (cluster.num_gpus() > 8)
    return Error::invalid("gpus",
                          "the exhaustive optimum is limited to 8 GPUs, got " + std::to_string(cluster.num_gpus()));
  DeploymentOptions opts;
  opts.mode = mode;
  opts.consider_packing = false;  // the incumbent must lie in the searched space
  auto heuristic = plan_deployment(models, cluster, opts);
  if (!heuristic) return heuristic.error();
  ExhaustiveResult out;
  out.deployment = *heuristic;
  const size_t num_layers = models[0].layers.size();
  std::vector<std::vector<size_t>> groups;
  if (mode == DeploymentMode::kColocated)
    groups.push_back({0, 1});
  else
    for (size_t m = 0; m < models.size(); ++m) groups.push_back({m});
  for (const auto& group : groups)
    for (size_t l = 0; l < num_layers; ++l) {
      if (l >= models[group[0]].layers.size()) continue;
      LayerFrame f = make_frame(models, group, l);
      for (size_t k = 0; k < group.size(); ++k)
        f.deployment.models[k].experts[0] = heuristic->models[group[k]].experts[l];
      const double incumbent = frame_cost(f, cluster, mode);
      std::vector<const LayerStats*> layers;
      for (const ModelStats& m : f.models) layers.push_back(&m.layers[0]);
      std::vector<std::vector<int32_t>> gpu_of;  // [model][expert]
      for (const auto& md : f.deployment.models) {
        std::vector<int32_t> g;
        for (const auto& reps : md.experts[0]) g.push_back(reps[0].gpu);
        gpu_of.push_back(std::move(g));
      }
      const detail::BranchAndBoundResult r = detail::branch_and_bound(layers, cluster, mode, gpu_of, incumbent);
      out.nodes += r.nodes;
      for (size_t k = 0; k < group.size(); ++k)
        for (size_t e = 0; e < r.gpu_of[k].size(); ++e)
          out.deployment.models[group[k]].experts[l][e] = {Replica{r.gpu_of[k][e], 1.0}};
    }
  out.cost_s = deployment_cost_s(models, out.deployment, cluster, mode);
  return out;
}

}  // namespace aurora::sched
