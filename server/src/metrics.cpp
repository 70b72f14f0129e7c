#include "metrics.hpp"

#include <cstdio>

namespace aurora::server {

namespace {

// Fine low buckets: sub-10 ms TTFT and ITL are normal for small models and fast engines, and
// vLLM's smallest request-latency bucket (0.3 s) is too coarse to see them.
constexpr double kTtftBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,   0.25,  0.5,   0.75,
                                   1.0,   2.5,    5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
constexpr double kItlBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03,
                                  0.04,   0.05,  0.075,  0.1,   0.15, 0.2,   0.3,  0.4,   0.5,
                                  0.75,   1.0,   2.5,    5.0,   7.5,  10.0,  20.0, 40.0,  80.0};
constexpr double kLatencyBuckets[] = {0.001, 0.005, 0.01,  0.025, 0.05,  0.1,   0.25,   0.5,
                                      1.0,   2.5,   5.0,   10.0,  15.0,  20.0,  30.0,   40.0,
                                      50.0,  60.0,  120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += number(value);
  out += '\n';
}

constexpr const char* kFinishedReasons[] = {"stop", "length", "abort", "error"};
constexpr const char* kRejectReasons[] = {"queue_full", "draining", "loading", "too_many_connections", "ws_inflight"};

// Online Aurora's planner (Engine::plan_snapshot), when the engine has one.
void render_online(std::string& out, const runtime::Engine* engine) {
  if (engine == nullptr) return;
  const runtime::PlanSnapshot p = engine->plan_snapshot();
  if (!p.enabled) return;
  family(out, "aurora:planner_runs_total", "counter", "Runs of the background deployment planner.");
  sample(out, "aurora:planner_runs_total", "", static_cast<double>(p.planner_runs_total));
  family(out, "aurora:planner_failures_total", "counter", "Planner runs that failed (the plan in force stayed).");
  sample(out, "aurora:planner_failures_total", "", static_cast<double>(p.planner_failures_total));
  family(out, "aurora:planner_overruns_total", "counter", "Planner runs past their time budget (discarded).");
  sample(out, "aurora:planner_overruns_total", "", static_cast<double>(p.planner_overruns_total));
  family(out, "aurora:plan_switches_total", "counter", "Expert placements switched while serving.");
  sample(out, "aurora:plan_switches_total", "", static_cast<double>(p.switches_total));
  family(out, "aurora:plan_predicted_step_seconds", "gauge",
         "Simulated MoE step time on the statistics window: the plan in force and a fresh plan.");
  sample(out, "aurora:plan_predicted_step_seconds", "plan=\"in_force\"", p.predicted_current_s);
  sample(out, "aurora:plan_predicted_step_seconds", "plan=\"fresh\"", p.predicted_fresh_s);
  family(out, "aurora:plan_recovered_ratio", "gauge",
         "Fresh plan's predicted step time over the plan in force's (1 = as good).");
  sample(out, "aurora:plan_recovered_ratio", "", p.recovered_fraction);
  family(out, "aurora:replan_frozen", "gauge", "1 while replanning is frozen.");
  sample(out, "aurora:replan_frozen", "", p.frozen ? 1.0 : 0.0);
  family(out, "aurora:expert_migration_in_progress", "gauge", "1 while expert weights move between ranks.");
  sample(out, "aurora:expert_migration_in_progress", "", p.migration_in_progress ? 1.0 : 0.0);

  // The per-step order: which source each layer uses and the measurements behind the choice.
  family(out, "aurora:all_to_all_order_window", "gauge",
         "1 when the layer's transfer order is the statistics window's template fitted to the counts, 0 when planned "
         "live.");
  family(out, "aurora:all_to_all_order_cost_seconds", "gauge",
         "Measured time per step on the critical path to get the order: planning it live or fitting the window's.");
  family(out, "aurora:all_to_all_window_penalty_seconds", "gauge",
         "Predicted exchange time of the window order minus the live order, on the same steps' counts.");
  family(out, "aurora:rank_compute_speed", "gauge", "Relative expert speed of each rank, as the planner uses it.");
  for (const auto& m : p.models) {
    const std::string model = "model_name=\"" + escape_label(m.name) + "\"";
    for (const auto& l : m.layers) {
      const std::string labels = model + ",layer=\"" + std::to_string(l.layer) + "\"";
      sample(out, "aurora:all_to_all_order_window", labels, l.order_source == "window" ? 1.0 : 0.0);
      sample(out, "aurora:all_to_all_order_cost_seconds", labels + ",source=\"live\"", l.plan_us * 1e-6);
      sample(out, "aurora:all_to_all_order_cost_seconds", labels + ",source=\"window\"", l.fit_us * 1e-6);
      sample(out, "aurora:all_to_all_window_penalty_seconds", labels, l.window_penalty_us * 1e-6);
    }
    for (size_t r = 0; r < m.ranks.size(); ++r) {
      sample(out, "aurora:rank_compute_speed", model + ",rank=\"" + std::to_string(r) + "\"", m.ranks[r].compute_speed);
    }
  }
}

}  // namespace

Histogram::Histogram(std::span<const double> upper_bounds)
    : bounds_(upper_bounds.begin(), upper_bounds.end()),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(upper_bounds.size())) {
  for (size_t i = 0; i < bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  if (i < bounds_.size()) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    sample(out, name + "_bucket", labels + sep + "le=\"" + number(bounds_[i]) + "\"", static_cast<double>(cumulative));
  }
  const uint64_t count = count_.load(std::memory_order_relaxed);
  sample(out, name + "_bucket", labels + sep + "le=\"+Inf\"", static_cast<double>(std::max(count, cumulative)));
  sample(out, name + "_sum", labels, sum_.load(std::memory_order_relaxed));
  sample(out, name + "_count", labels, static_cast<double>(std::max(count, cumulative)));
}

ModelMetrics::ModelMetrics()
    : time_to_first_token(kTtftBuckets),
      inter_token_latency(kItlBuckets),
      e2e_request_latency(kLatencyBuckets),
      request_queue_time(kLatencyBuckets) {}

ModelMetrics* Metrics::model(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto& slot = models_[name];
  if (!slot) slot = std::make_unique<ModelMetrics>();
  return slot.get();
}

void Metrics::count_response(int status) {
  const int cls = status / 100 - 2;
  if (cls >= 0 && cls < 4) responses[static_cast<size_t>(cls)].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::render(const runtime::Engine* engine) const {
  std::string out;
  out.reserve(16384);
  runtime::EngineStats stats;
  std::vector<runtime::ModelInfo> infos;
  if (engine != nullptr) {
    stats = engine->stats();
    infos = engine->models();
  }
  // Every served model's counters and histograms are present from the first scrape, at zero
  // (as vLLM and the Prometheus clients do): rate() and absent() alerts see a series, not a gap.
  static const ModelMetrics kUnused;
  std::map<std::string, const ModelMetrics*> by_name;
  for (const auto& info : infos) by_name.emplace(info.name, &kUnused);
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, m] : models_) by_name[name] = m.get();
  }
  const std::vector<std::pair<std::string, const ModelMetrics*>> models(by_name.begin(), by_name.end());
  // Engine-wide gauges carry the model's name when one model is served (vLLM dashboards filter on
  // it) and model_name="all" when several share the engine.
  const std::string engine_label =
      "model_name=\"" + escape_label(infos.size() == 1 ? infos[0].name : std::string("all")) + "\"";

  family(out, "aurora:num_requests_running", "gauge", "Requests in the engine's running batch.");
  sample(out, "aurora:num_requests_running", engine_label, stats.num_requests_running);
  family(out, "aurora:num_requests_waiting", "gauge", "Requests waiting to be scheduled.");
  sample(out, "aurora:num_requests_waiting", engine_label, stats.num_requests_waiting);
  family(out, "aurora:kv_cache_usage_perc", "gauge", "Fraction of KV-cache blocks in use (0 to 1).");
  sample(out, "aurora:kv_cache_usage_perc", engine_label, stats.kv_cache_usage);
  family(out, "aurora:kv_cache_blocks_used", "gauge", "KV-cache blocks in use.");
  sample(out, "aurora:kv_cache_blocks_used", engine_label, static_cast<double>(stats.kv_blocks_used));
  family(out, "aurora:kv_cache_blocks_total", "gauge", "KV-cache blocks in total.");
  sample(out, "aurora:kv_cache_blocks_total", engine_label, static_cast<double>(stats.kv_blocks_total));
  family(out, "aurora:num_preemptions_total", "counter", "Preemptions of running requests.");
  sample(out, "aurora:num_preemptions_total", engine_label, static_cast<double>(stats.num_preemptions_total));
  family(out, "aurora:engine_steps_total", "counter", "Engine steps run.");
  sample(out, "aurora:engine_steps_total", engine_label, static_cast<double>(stats.num_steps_total));

  family(out, "aurora:prompt_tokens_total", "counter", "Prefill tokens processed.");
  for (const auto& [name, m] : models) {
    sample(out, "aurora:prompt_tokens_total", "model_name=\"" + escape_label(name) + "\"",
           static_cast<double>(m->prompt_tokens.load(std::memory_order_relaxed)));
  }
  family(out, "aurora:generation_tokens_total", "counter", "Generated tokens.");
  for (const auto& [name, m] : models) {
    sample(out, "aurora:generation_tokens_total", "model_name=\"" + escape_label(name) + "\"",
           static_cast<double>(m->generation_tokens.load(std::memory_order_relaxed)));
  }
  family(out, "aurora:request_success_total", "counter", "Finished requests by finish reason.");
  for (const auto& [name, m] : models) {
    for (size_t i = 0; i < 4; ++i) {
      sample(out, "aurora:request_success_total",
             "model_name=\"" + escape_label(name) + "\",finished_reason=\"" + kFinishedReasons[i] + "\"",
             static_cast<double>(m->request_success[i].load(std::memory_order_relaxed)));
    }
  }
  struct HistogramFamily {
    const char* name;
    const char* help;
    const Histogram ModelMetrics::*member;
  };
  const HistogramFamily histograms[] = {
      {"aurora:time_to_first_token_seconds", "Time from request arrival to its first token.",
       &ModelMetrics::time_to_first_token},
      {"aurora:inter_token_latency_seconds", "Time between two token outputs of a request.",
       &ModelMetrics::inter_token_latency},
      {"aurora:e2e_request_latency_seconds", "Time from request arrival to its end.",
       &ModelMetrics::e2e_request_latency},
      {"aurora:request_queue_time_seconds", "Time a request waited before it was first scheduled.",
       &ModelMetrics::request_queue_time},
  };
  for (const auto& h : histograms) {
    family(out, h.name, "histogram", h.help);
    for (const auto& [name, m] : models)
      (m->*h.member).render(out, h.name, "model_name=\"" + escape_label(name) + "\"");
  }

  // Aurora's own: the MoE layers.
  family(out, "aurora:expert_load", "gauge", "Tokens routed to each expert over the statistics window.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      for (size_t e = 0; e < layers[l].expert_load.size(); ++e) {
        sample(out, "aurora:expert_load",
               "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\",expert=\"" +
                   std::to_string(e) + "\"",
               layers[l].expert_load[e]);
      }
    }
  }
  family(out, "aurora:expert_load_balance", "gauge", "Max over mean expert load, per layer (1 = balanced).");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      sample(out, "aurora:expert_load_balance",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"", layers[l].load_balance);
    }
  }
  family(out, "aurora:all_to_all_seconds", "gauge", "All-to-all time of the last step, per layer.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      sample(out, "aurora:all_to_all_seconds",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"", layers[l].a2a_seconds);
    }
  }
  family(out, "aurora:all_to_all_lower_bound_seconds", "gauge",
         "Lower bound of the all-to-all time (heaviest send or receive volume over bandwidth), per layer.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      sample(out, "aurora:all_to_all_lower_bound_seconds",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"",
             layers[l].a2a_lower_bound_seconds);
    }
  }
  family(out, "aurora:all_to_all_over_lower_bound", "gauge", "All-to-all time over its lower bound, per layer.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      const double bound = layers[l].a2a_lower_bound_seconds;
      sample(out, "aurora:all_to_all_over_lower_bound",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"",
             bound > 0 ? layers[l].a2a_seconds / bound : 0.0);
    }
  }
  family(out, "aurora:all_to_all_predicted_seconds", "gauge",
         "Predicted all-to-all time of the last step (the transfer plan's cost model; dispatch + combine), per layer.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      sample(out, "aurora:all_to_all_predicted_seconds",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"", layers[l].a2a_seconds);
    }
  }
  family(out, "aurora:all_to_all_measured_seconds", "gauge",
         "Measured wall time of the last step's exchanges (dispatch + combine, waits for slower ranks included), per "
         "layer.");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      sample(out, "aurora:all_to_all_measured_seconds",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"",
             layers[l].a2a_measured_seconds);
    }
  }
  family(
      out, "aurora:all_to_all_measured_over_lower_bound", "gauge",
      "Measured all-to-all time over its lower bound, per layer (on CPU ranks: meaningful with --emulate-link-gbps).");
  for (const auto& [model, layers] : stats.layers) {
    for (size_t l = 0; l < layers.size(); ++l) {
      const double bound = layers[l].a2a_lower_bound_seconds;
      sample(out, "aurora:all_to_all_measured_over_lower_bound",
             "model_name=\"" + escape_label(model) + "\",layer=\"" + std::to_string(l) + "\"",
             bound > 0 ? layers[l].a2a_measured_seconds / bound : 0.0);
    }
  }
  family(out, "aurora:plan_version", "gauge", "Version of the expert placement and transfer plan in use.");
  sample(out, "aurora:plan_version", "", static_cast<double>(stats.plan_version));
  family(out, "aurora:expert_migrations_total", "counter", "Expert weights moved between ranks.");
  sample(out, "aurora:expert_migrations_total", "", static_cast<double>(stats.expert_migrations_total));
  family(out, "aurora:engine_seconds_without_progress", "gauge",
         "Seconds since the engine last finished a step while it had work (0 when idle).");
  sample(out, "aurora:engine_seconds_without_progress", "", stats.seconds_without_progress);
  family(out, "aurora:engine_failed_steps_total", "counter", "Engine steps that failed (their requests got errors).");
  sample(out, "aurora:engine_failed_steps_total", "", static_cast<double>(stats.failed_steps_total));

  render_online(out, engine);

  // The front end.
  family(out, "aurora:http_connections_open", "gauge", "Open client connections.");
  sample(out, "aurora:http_connections_open", "", static_cast<double>(connections_open.load()));
  family(out, "aurora:streams_open", "gauge", "Generations being streamed or awaited by a client.");
  sample(out, "aurora:streams_open", "", static_cast<double>(streams_open.load()));
  family(out, "aurora:client_disconnects_total", "counter", "Clients gone before their request finished.");
  sample(out, "aurora:client_disconnects_total", "", static_cast<double>(client_disconnects.load()));
  family(out, "aurora:no_progress_cancels_total", "counter",
         "Requests ended with a no_progress error: no token within no_progress_timeout_ms.");
  sample(out, "aurora:no_progress_cancels_total", "", static_cast<double>(no_progress_cancels.load()));
  family(out, "aurora:requests_rejected_total", "counter", "Requests refused for capacity or state, by reason.");
  for (size_t i = 0; i < rejected.size(); ++i) {
    sample(out, "aurora:requests_rejected_total", std::string("reason=\"") + kRejectReasons[i] + "\"",
           static_cast<double>(rejected[i].load()));
  }
  family(out, "aurora:http_responses_total", "counter", "HTTP responses by status class.");
  constexpr const char* kClasses[] = {"2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 0; i < 4; ++i) {
    sample(out, "aurora:http_responses_total", std::string("status=\"") + kClasses[i] + "\"",
           static_cast<double>(responses[i].load()));
  }
  return out;
}

}  // namespace aurora::server
