// simulate: one inference step (every MoE layer: gate -> dispatch -> experts -> combine -> aggregate) of
// one or two models under a deployment and a transmission order, on a cluster (Aurora §2, §6.1).
//
// Per model and layer, each component's time is its maximum over GPUs (GPU g runs its shards' gate and
// aggregation and its experts' FFN at compute_speed_g); all-to-alls are collective (start when the
// previous component ended on every GPU, end when the last byte arrived).
//  - exclusive: each model runs alone on the cluster, one after the other; a layer takes
//      |G| + T(N) + |F| + T(C) + |A|.
//  - colocated, models sharing GPUs: the paper's staggered timeline (Table 2); overlapping all-to-alls
//    share the ports, so an all-to-all that overlaps earlier ones ends no earlier than the aggregate of all
//    of them would (T(Na+Nb), T(Na+Nb+Ca), ...). See docs/scheduler.md for the exact recurrences.
//  - colocated, models on disjoint GPUs (Lina-style packing): each model runs its exclusive chain on its
//    own GPUs, at the same time; a layer takes the longer of the two.
// T(X) comes from the CommModel: the matching lower bound (fast, used inside searches) or the planner's
// chosen plan (or a forced baseline order) with its phase latency.
// GPU utilisation = compute time summed over GPUs / (number of GPUs x inference time).
// Pure function; deterministic.
#pragma once

#include <vector>

#include "aurora/scheduler/all_to_all.hpp"
#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/deployment.hpp"
#include "aurora/scheduler/model_stats.hpp"

namespace aurora::sched {

enum class DeploymentMode : uint8_t { kExclusive, kColocated };
const char* deployment_mode_name(DeploymentMode mode);

struct CommModel {
  enum class Kind : uint8_t { kMatchingBound, kPlanned };
  Kind kind = Kind::kPlanned;
  AllToAllOptions order;    // kPlanned: how plans are chosen (policy, forced strategy, phase latency)
  bool keep_plans = false;  // kPlanned: store each layer's dispatch and combine plans in the result
};

struct ModelLayerTiming {
  double gate_s = 0, dispatch_s = 0, expert_s = 0, combine_s = 0, aggregate_s = 0;  // maxima over GPUs
};

struct LayerSimulation {
  double time_s = 0;         // this layer's share of the inference time
  double all_to_all_s = 0;   // exclusive: sum of the models' dispatch + combine; colocated: aggregated ones
  double compute_s = 0;      // gate + expert + aggregation time summed over GPUs and models
  double lower_bound_s = 0;  // per-port bound of the (aggregated) dispatch
  std::vector<ModelLayerTiming> models;
  // With keep_plans: exclusive mode, one plan per model (index = model); colocated mode, one plan carrying
  // both models' traffic (Transfer::model names the model).
  std::vector<TransmissionPlan> dispatch, combine;
};

struct SimulationResult {
  double inference_time_s = 0;
  double all_to_all_time_s = 0;
  double compute_time_s = 0;  // summed over GPUs
  double gpu_utilization = 0;
  std::vector<LayerSimulation> layers;
};

SimulationResult simulate(const std::vector<ModelStats>& models, const Deployment& deployment, const Cluster& cluster,
                          DeploymentMode mode, const CommModel& comm);

// One layer of simulate() (models without that layer are skipped).
LayerSimulation simulate_layer(const std::vector<ModelStats>& models, const Deployment& deployment,
                               const Cluster& cluster, DeploymentMode mode, const CommModel& comm, int layer);

// All-to-all times that the colocated timeline needs (a = first model, b = second).
struct ColocatedCommTimes {
  double na = 0, nb = 0, ca = 0, cb = 0;    // each all-to-all alone
  double na_nb = 0, na_nb_ca = 0, all = 0;  // aggregates of the ones that may overlap
};
// The Table 2 recurrence: the layer's time from the models' compute maxima and the all-to-all times.
double colocated_layer_time_s(const ModelLayerTiming& a, const ModelLayerTiming& b, const ColocatedCommTimes& t);

}  // namespace aurora::sched
