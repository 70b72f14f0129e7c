#include "aurora/scheduler/simulator.hpp"

#include <algorithm>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/lower_bound.hpp"

namespace aurora::sched {

const char* deployment_mode_name(DeploymentMode mode) {
  return mode == DeploymentMode::kExclusive ? "exclusive" : "colocated";
}

namespace {

struct ModelLayer {
  TrafficMatrix dispatch, combine;
  ModelLayerTiming timing;  // compute maxima; comm filled later
  double compute_sum = 0;
  std::vector<char> uses_gpu;
};

ModelLayer model_layer(const ModelStats& model, const ModelDeployment& dep, int layer, const Cluster& cluster) {
  const int n = cluster.num_gpus();
  const LayerStats& ls = model.layers[static_cast<size_t>(layer)];
  ModelLayer out;
  out.dispatch = gpu_traffic(model, dep, layer, n);
  out.combine = out.dispatch.transposed();
  std::vector<int> shards(static_cast<size_t>(n), 0);
  for (int s = 0; s < ls.num_shards; ++s) ++shards[static_cast<size_t>(shard_gpu(model, dep, layer, s))];
  const std::vector<int64_t> work = gpu_expert_bytes(model, dep, layer, n);
  out.uses_gpu.assign(static_cast<size_t>(n), 0);
  for (const auto& replicas : dep.experts[static_cast<size_t>(layer)])
    for (const Replica& r : replicas) out.uses_gpu[static_cast<size_t>(r.gpu)] = 1;
  for (int g = 0; g < n; ++g) {
    const double speed = cluster.gpus[static_cast<size_t>(g)].compute_speed;
    const double gate = shards[static_cast<size_t>(g)] * ls.gate_s / speed;
    const double agg = shards[static_cast<size_t>(g)] * ls.aggregate_s / speed;
    const double ffn = static_cast<double>(work[static_cast<size_t>(g)]) * ls.expert_s_per_byte / speed;
    out.timing.gate_s = std::max(out.timing.gate_s, gate);
    out.timing.aggregate_s = std::max(out.timing.aggregate_s, agg);
    out.timing.expert_s = std::max(out.timing.expert_s, ffn);
    out.compute_sum += gate + agg + ffn;
    if (shards[static_cast<size_t>(g)] > 0) out.uses_gpu[static_cast<size_t>(g)] = 1;
  }
  return out;
}

class CommTimer {
 public:
  CommTimer(const Cluster& cluster, const CommModel& comm) : cluster_(cluster), comm_(comm) {}

  double time(const TrafficMatrix& t) {
    if (comm_.kind == CommModel::Kind::kMatchingBound) return matching_lower_bound_s(t, cluster_);
    return planner_.plan(t, cluster_, comm_.order).makespan_s;
  }
  template <class... M>
  double time_sum(const TrafficMatrix& first, const M&... rest) {
    sum_ = first;
    (sum_ += ... += rest);
    return time(sum_);
  }
  TransmissionPlan plan_models(const TrafficMatrix& a, const TrafficMatrix* b) {
    std::vector<const TrafficMatrix*> v{&a};
    if (b) v.push_back(b);
    return planner_.plan_models(v, cluster_, comm_.order);
  }

 private:
  const Cluster& cluster_;
  const CommModel& comm_;
  AllToAllPlanner planner_;
  TrafficMatrix sum_;
};

double exclusive_chain(ModelLayer& m, CommTimer& timer) {
  m.timing.dispatch_s = timer.time(m.dispatch);
  m.timing.combine_s = timer.time(m.combine);
  return m.timing.gate_s + m.timing.dispatch_s + m.timing.expert_s + m.timing.combine_s + m.timing.aggregate_s;
}

}  // namespace

double colocated_layer_time_s(const ModelLayerTiming& a, const ModelLayerTiming& b, const ColocatedCommTimes& t) {
  const double e_gb = b.gate_s;
  const double e_na = t.na;
  const double e_fa = std::max(e_gb, e_na) + a.expert_s;
  const double e_nb = std::max(e_gb + t.nb, t.na_nb);
  const double e_fb = std::max(e_fa, e_nb) + b.expert_s;
  const double e_ca = std::max(e_fa + t.ca, t.na_nb_ca);
  const double e_aa = std::max(e_fb, e_ca) + a.aggregate_s;
  const double e_cb = std::max(e_fb + t.cb, t.all);
  const double e_ab = std::max(e_aa, e_cb) + b.aggregate_s;
  return e_ab + a.gate_s;
}

LayerSimulation simulate_layer(const std::vector<ModelStats>& models, const Deployment& deployment,
                               const Cluster& cluster, DeploymentMode mode, const CommModel& comm, int layer) {
  AURORA_CHECK(!models.empty() && models.size() == deployment.models.size());
  const int n = cluster.num_gpus();
  CommTimer timer(cluster, comm);
  const size_t l = static_cast<size_t>(layer);
  LayerSimulation out;
  std::vector<ModelLayer> ml;
  std::vector<size_t> present;  // models that have this layer
  for (size_t m = 0; m < models.size(); ++m) {
    if (l >= models[m].layers.size()) continue;
    ml.push_back(model_layer(models[m], deployment.models[m], layer, cluster));
    present.push_back(m);
    out.compute_s += ml.back().compute_sum;
  }
  if (ml.empty()) return out;
  bool shared_gpus = false;
  if (ml.size() == 2)
    for (int g = 0; g < n; ++g)
      shared_gpus = shared_gpus || (ml[0].uses_gpu[static_cast<size_t>(g)] && ml[1].uses_gpu[static_cast<size_t>(g)]);

  TrafficMatrix all_dispatch = ml[0].dispatch;
  for (size_t k = 1; k < ml.size(); ++k) all_dispatch += ml[k].dispatch;
  out.lower_bound_s = all_to_all_lower_bound_s(all_dispatch, cluster);

  if (mode == DeploymentMode::kExclusive || ml.size() == 1) {
    for (ModelLayer& m : ml) {
      out.time_s += exclusive_chain(m, timer);
      out.all_to_all_s += m.timing.dispatch_s + m.timing.combine_s;
    }
  } else if (!shared_gpus) {
    AURORA_CHECK_MSG(ml.size() == 2, "colocated mode takes two models");
    // Disjoint GPUs: the two models run side by side, each with its own all-to-alls.
    out.time_s = std::max(exclusive_chain(ml[0], timer), exclusive_chain(ml[1], timer));
    out.all_to_all_s = timer.time_sum(ml[0].dispatch, ml[1].dispatch) + timer.time_sum(ml[0].combine, ml[1].combine);
  } else {
    AURORA_CHECK_MSG(ml.size() == 2, "colocated mode takes two models");
    // Table 2: model b's gate overlaps model a's dispatch; each model's FFN fills the other's
    // communication; overlapping all-to-alls share the ports.
    ModelLayer& a = ml[0];
    ModelLayer& b = ml[1];
    ColocatedCommTimes t;
    t.na = timer.time(a.dispatch);
    t.nb = timer.time(b.dispatch);
    t.ca = timer.time(a.combine);
    t.cb = timer.time(b.combine);
    t.na_nb = timer.time_sum(a.dispatch, b.dispatch);
    t.na_nb_ca = timer.time_sum(a.dispatch, b.dispatch, a.combine);
    t.all = timer.time_sum(a.dispatch, b.dispatch, a.combine, b.combine);
    a.timing.dispatch_s = t.na;
    b.timing.dispatch_s = t.nb;
    a.timing.combine_s = t.ca;
    b.timing.combine_s = t.cb;
    out.time_s = colocated_layer_time_s(a.timing, b.timing, t);
    out.all_to_all_s = t.na_nb + timer.time_sum(a.combine, b.combine);
  }
  if (comm.kind == CommModel::Kind::kPlanned && comm.keep_plans) {
    const bool together = mode == DeploymentMode::kColocated && ml.size() == 2;
    for (size_t k = 0; k < (together ? 1 : ml.size()); ++k) {
      out.dispatch.push_back(timer.plan_models(ml[k].dispatch, together ? &ml[1].dispatch : nullptr));
      out.combine.push_back(timer.plan_models(ml[k].combine, together ? &ml[1].combine : nullptr));
      for (TransmissionPlan* p : {&out.dispatch.back(), &out.combine.back()})
        for (Transfer& t : p->transfers)
          t.model = static_cast<int32_t>(present[together ? static_cast<size_t>(t.model) : k]);
    }
  }
  for (const ModelLayer& m : ml) out.models.push_back(m.timing);
  return out;
}

SimulationResult simulate(const std::vector<ModelStats>& models, const Deployment& deployment, const Cluster& cluster,
                          DeploymentMode mode, const CommModel& comm) {
  SimulationResult result;
  size_t num_layers = 0;
  for (const ModelStats& m : models) num_layers = std::max(num_layers, m.layers.size());
  for (size_t l = 0; l < num_layers; ++l) {
    result.layers.push_back(simulate_layer(models, deployment, cluster, mode, comm, static_cast<int>(l)));
    const LayerSimulation& out = result.layers.back();
    result.inference_time_s += out.time_s;
    result.all_to_all_time_s += out.all_to_all_s;
    result.compute_time_s += out.compute_s;
  }
  const int n = cluster.num_gpus();
  result.gpu_utilization = result.inference_time_s > 0 ? result.compute_time_s / (n * result.inference_time_s) : 0;
  return result;
}

}  // namespace aurora::sched
