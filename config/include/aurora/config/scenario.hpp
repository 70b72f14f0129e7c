// Scenario: the input of `aurora plan` (cluster, one or two MoE models, per-layer routing statistics),
// parsed and validated into plain structs. Schema: docs/plan-schema.md.
//
// Every error names the field path and the offending value, e.g.
// `models[0].layers[2].traffic_bytes[3][1]: must be >= 0, got -4`. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::config {

enum class ScenarioMode { kExclusive, kColocated };
// Whose token shard a traffic row is: the paper's form (row i = the shard held with expert i, square
// E x E) or the data-parallel serving form (row g = the tokens on GPU g, G x E).
enum class TrafficForm { kExperts, kGpus };

struct ScenarioGpu {
  double send_gbps = 0;
  double recv_gbps = 0;
  double compute_speed = 1.0;  // relative to the GPU whose times the layers give
  double memory_gb = 0;        // 0 = not limited
};

struct ScenarioLayer {
  std::vector<std::vector<int64_t>> traffic_bytes;  // rows x experts
  double gate_us = 0;                               // per token shard
  double expert_us_per_mb = 0;                      // expert FFN time per MB (1e6 bytes) of tokens processed
  double aggregate_us = 0;                          // per token shard
};

struct ScenarioModel {
  std::string name;
  TrafficForm traffic_form = TrafficForm::kExperts;
  int num_experts = 0;
  int top_k = 1;                // informational: traffic already counts each of a token's k experts
  double expert_memory_mb = 0;  // weights of one expert of one layer
  std::vector<ScenarioLayer> layers;
};

struct Scenario {
  std::string name;
  ScenarioMode mode = ScenarioMode::kExclusive;
  double phase_latency_us = 0;
  std::vector<ScenarioGpu> gpus;
  std::vector<ScenarioModel> models;
  int max_replicas_per_expert = 1;  // placement.max_replicas_per_expert
  int max_extra_replicas = 0;       // placement.max_extra_replicas
  uint64_t seed = 0;                // random baselines
};

const char* scenario_mode_name(ScenarioMode mode);

// `what` names the source in syntax errors (e.g. the file name).
Result<Scenario> parse_scenario(std::string_view json_text, const std::string& what = "scenario");
Result<Scenario> load_scenario(const std::string& path);

}  // namespace aurora::config
