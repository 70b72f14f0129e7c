#include "online/online_controller.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "aurora/config/check.hpp"

namespace aurora::runtime {
namespace {

constexpr int64_t kMeasureEvery = 16;   // auto: one step in 16 costs both order sources
constexpr int64_t kMinBothSamples = 8;  // auto: measurements before the rule decides
constexpr size_t kHistory = 64;
constexpr size_t kTimeline = 240;

// The dispatch traffic of one layer under `owner`, in bytes per step.
TrafficMatrix layer_traffic(const WindowStats& s, int32_t layer, const std::vector<int32_t>& owner, int64_t row_bytes) {
  TrafficMatrix t;
  t.num_ranks = s.num_ranks;
  t.bytes.assign(static_cast<size_t>(s.num_ranks) * s.num_ranks, 0);
  const auto& re = s.rank_expert[static_cast<size_t>(layer)];
  if (re.empty()) return t;
  std::vector<double> acc(t.bytes.size(), 0.0);
  for (int32_t r = 0; r < s.num_ranks; ++r) {
    for (int32_t e = 0; e < s.num_experts; ++e) {
      acc[static_cast<size_t>(r) * s.num_ranks + owner[static_cast<size_t>(e)]] +=
          re[static_cast<size_t>(r) * s.num_experts + e] * static_cast<double>(row_bytes);
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) t.bytes[i] = std::llround(acc[i]);
  return t;
}

bool any_traffic(const TrafficMatrix& t) {
  for (int32_t s = 0; s < t.num_ranks; ++s) {
    for (int32_t d = 0; d < t.num_ranks; ++d) {
      if (s != d && t.at(s, d) > 0) return true;
    }
  }
  return false;
}

double balance(const std::vector<double>& v) {
  double total = 0, peak = 0;
  for (double x : v) {
    total += x;
    peak = std::max(peak, x);
  }
  return total > 0 ? peak / (total / static_cast<double>(v.size())) : 1.0;
}

}  // namespace

OnlineController::OnlineController(OnlineOptions options, std::vector<OnlineModel> models, std::function<void()> wake,
                                   PlacementPolicy policy)
    : options_(std::move(options)),
      models_(std::move(models)),
      wake_(std::move(wake)),
      policy_(std::move(policy)),
      start_(std::chrono::steady_clock::now()),
      gate_(GateOptions{options_.min_gain, options_.cost_margin, options_.amortize_s, options_.min_dwell_s,
                        options_.confirmations}) {
  for (const auto& m : models_) {
    AURORA_CHECK(m.config != nullptr && m.num_ranks >= 1);
    windows_.push_back(std::make_unique<TrafficWindow>(m.config->num_layers, m.num_ranks, m.config->num_experts,
                                                       options_.stats_half_life_s));
    steps_.push_back(0);
    if (m.host) {
      owners_.push_back(m.host->owners());
    } else {
      owners_.emplace_back(static_cast<size_t>(m.config->num_layers));
    }
    epochs_.emplace_back(static_cast<size_t>(m.config->num_layers), 0);
    order_decisions_.emplace_back();
    order_planners_.push_back(make_aurora_planner(m.num_ranks, options_.link_gbps, options_.phase_latency_us * 1e-6));
  }
}

OnlineController::~OnlineController() { stop(); }

void OnlineController::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { planner_loop(); });
}

void OnlineController::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

double OnlineController::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void OnlineController::on_step(size_t model, const StepResult& result, double step_seconds) {
  windows_[model]->record(result, step_seconds, std::chrono::steady_clock::now());
  ++steps_[model];
}

void OnlineController::at_step_boundary() {
  if (boundary_work_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mu_);
    for (auto& o : orders_) {
      // A template made for a placement that has changed since is stale: drop it.
      if (epochs_[o.model][static_cast<size_t>(o.layer)] != o.epoch || !models_[o.model].host) continue;
      models_[o.model].host->set_order(o.layer, std::move(o.dispatch), std::move(o.combine), o.use_window);
    }
    orders_.clear();
    for (int32_t k = 0; k < options_.migration_layers_per_step && !commits_.empty(); ++k) {
      Commit c = std::move(commits_.front());
      commits_.pop_front();
      PlacementHost* host = models_[c.model].host;
      const int64_t moved = host->commit_layer(c.layer, c.owner, std::move(c.staged));
      migrations_total_ += moved;
      owners_[c.model][static_cast<size_t>(c.layer)] = std::move(c.owner);
      ++epochs_[c.model][static_cast<size_t>(c.layer)];
      ++layers_done_;
      if (c.final_version > 0) {
        // The deployment is complete: from this step boundary on it is the plan in force.
        for (const auto& m : models_) {
          if (m.host) m.host->set_version(c.final_version);
        }
        plan_version_ = c.final_version;
        c.change.time_s = now_s();
        history_.push_back(std::move(c.change));
        if (history_.size() > kHistory) history_.erase(history_.begin());
        ++switches_;
        migrating_ = false;
      }
    }
    boundary_work_.store(!commits_.empty(), std::memory_order_release);
    cv_.notify_all();
  }
  if (options_.order_source == OrderSource::kAuto && options_.replan != ReplanMode::kOff) {
    for (size_t m = 0; m < models_.size(); ++m) {
      if (models_[m].host) models_[m].host->measure_order_sources(steps_[m] % kMeasureEvery == kMeasureEvery - 1);
    }
  }
}

void OnlineController::planner_loop() {
  std::unique_lock lock(mu_);
  auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.replan_interval_ms);
  while (!stop_) {
    cv_.wait_until(lock, next, [&] { return stop_ || trigger_; });
    if (stop_) break;
    const bool triggered = trigger_;
    trigger_ = false;
    if (!triggered && std::chrono::steady_clock::now() < next) continue;
    next = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.replan_interval_ms);
    lock.unlock();
    try {
      run_once(triggered);
    } catch (const std::exception& e) {
      // Nothing the planner does may take the engine down: the plan in force stays.
      std::lock_guard guard(mu_);
      ++failures_;
      last_decision_ = std::string("planner failed: ") + e.what() + "; the plan in force stays";
    }
    lock.lock();
  }
}

void OnlineController::note(const std::string& decision) {
  std::lock_guard lock(mu_);
  last_decision_ = decision;
}

void OnlineController::run_once(bool triggered) {
  std::vector<std::vector<std::vector<int32_t>>> owners;
  std::vector<std::vector<int64_t>> epochs;
  {
    std::lock_guard lock(mu_);
    owners = owners_;
    epochs = epochs_;
  }
  std::vector<WindowStats> stats;
  bool traffic = false;
  for (const auto& w : windows_) {
    stats.push_back(w->snapshot());
    traffic = traffic || stats.back().steps > 0;
  }
  if (!traffic) {
    note("waiting for traffic");
    return;
  }
  if (options_.replan != ReplanMode::kOff && options_.order_source != OrderSource::kLive) {
    post_orders(stats, owners, epochs);
  }

  bool can_place = true;
  PolicyInput in;
  in.link_gbps = options_.link_gbps;
  in.phase_latency_s = options_.phase_latency_us * 1e-6;
  in.amortize_s = options_.amortize_s;
  in.cost_margin = options_.cost_margin;
  for (size_t m = 0; m < models_.size(); ++m) {
    const auto& om = models_[m];
    if (!om.host || om.num_ranks != models_[0].num_ranks) {
      can_place = false;
      continue;
    }
    in.models.push_back(PolicyModel{om.config, owners[m], stats[m]});
    in.bytes_per_weight = om.host->bytes_per_weight();
  }
  if (in.models.empty()) {
    note("statistics only: this backend cannot move experts");
    return;
  }
  in.colocated = in.models.size() == 2;
  const int32_t n = models_[0].num_ranks;
  if (!options_.rank_speeds.empty()) {
    in.rank_speeds = options_.rank_speeds;
  } else if (options_.measure_rank_speeds) {
    std::lock_guard lock(mu_);
    measured_speeds_ = measured_rank_speeds(stats[0], measured_speeds_);
    in.rank_speeds = measured_speeds_;
  } else {
    in.rank_speeds.assign(static_cast<size_t>(n), 1.0);
  }
  in.steps_per_second = stats[0].steps_per_second;
  {
    std::lock_guard lock(mu_);
    in.migration_bytes_per_s = migration_bytes_per_s_;
  }

  // The policy may throw or fail; a run past the budget is discarded. Either way nothing changes.
  const auto t0 = std::chrono::steady_clock::now();
  Result<Proposal> proposal = Error::make(ErrorCode::kInternal, "not run");
  std::string failure;
  try {
    proposal = policy_(in);
    if (!proposal) failure = proposal.error().message;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double now = now_s();
  std::unique_lock lock(mu_);
  ++runs_;
  last_plan_s_ = elapsed;
  if (!failure.empty()) {
    ++failures_;
    last_decision_ = "planner failed: " + failure + "; the plan in force stays";
    return;
  }
  if (elapsed * 1e3 > options_.plan_budget_ms) {
    ++overruns_;
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "planner overran its budget (%.0f ms > %d ms): result discarded, the plan in force stays",
                  elapsed * 1e3, options_.plan_budget_ms);
    last_decision_ = buf;
    return;
  }
  current_s_ = proposal->current_s;
  fresh_s_ = proposal->fresh_s;
  migration_s_ = proposal->migration_s;
  candidate_moves_ = proposal->moves;
  timeline_.push_back(PlanSnapshot::Sample{now, plan_version_.load(), current_s_, fresh_s_});
  if (timeline_.size() > kTimeline) timeline_.erase(timeline_.begin());

  GateInput g;
  g.now_s = now;
  g.current_s = proposal->current_s;
  g.candidate_s = proposal->candidate_s;
  g.steps_per_second = in.steps_per_second;
  g.migration_s = proposal->migration_s;
  g.moves = proposal->moves;
  g.triggered = triggered;
  const GateDecision d = gate_.evaluate(g);
  if (!d.switch_now) {
    last_decision_ = d.reason;
    return;
  }
  if (options_.replan != ReplanMode::kFull || !can_place) {
    last_decision_ = std::string("advice only (--replan ") + replan_mode_name(options_.replan) + "): would " + d.reason;
    return;
  }
  if (frozen_.load()) {
    last_decision_ = "frozen: would " + d.reason;
    return;
  }
  lock.unlock();
  std::vector<std::vector<std::vector<int32_t>>> from;
  for (size_t m = 0; m < models_.size(); ++m) from.push_back(owners[m]);
  migrate(*proposal, from, proposal->current_s, d.reason);
}

void OnlineController::post_orders(const std::vector<WindowStats>& stats,
                                   const std::vector<std::vector<std::vector<int32_t>>>& owners,
                                   const std::vector<std::vector<int64_t>>& epochs) {
  std::vector<PendingOrder> orders;
  std::vector<std::vector<std::string>> decisions(models_.size());
  for (size_t m = 0; m < models_.size(); ++m) {
    decisions[m].resize(static_cast<size_t>(models_[m].config->num_layers));
    if (!models_[m].host) continue;
    const auto& c = *models_[m].config;
    const WindowStats& s = stats[m];
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
      const auto& owner = owners[m][static_cast<size_t>(l)];
      TrafficMatrix dispatch = layer_traffic(s, l, owner, (int64_t{c.hidden_size} + 1) * 4);
      if (!any_traffic(dispatch)) continue;
      TrafficMatrix combine = layer_traffic(s, l, owner, int64_t{c.hidden_size} * 4).transposed();
      auto& planner = *order_planners_[m];
      auto d = std::make_shared<const OrderTemplate>(make_order_template(planner.plan(dispatch), s.num_ranks));
      auto k = std::make_shared<const OrderTemplate>(make_order_template(planner.plan(combine), s.num_ranks));
      bool window = options_.order_source == OrderSource::kWindow;
      std::string& why = decisions[m][static_cast<size_t>(l)];
      if (options_.order_source == OrderSource::kAuto) {
        // The rule (docs/online.md): fit the window's order when planning live costs more on the
        // step's critical path (measured) than the live order saves in exchange time (both orders
        // costed on the same steps' counts).
        const auto& ls = s.layers[static_cast<size_t>(l)];
        const double extra_us = ls.plan_us - ls.fit_us, saved_us = ls.window_estimate_us - ls.live_estimate_us;
        window = ls.both_samples >= kMinBothSamples && extra_us > saved_us;
        char buf[200];
        if (ls.both_samples < kMinBothSamples) {
          std::snprintf(buf, sizeof(buf), "live: measuring (%lld of %lld steps costed both)",
                        static_cast<long long>(ls.both_samples), static_cast<long long>(kMinBothSamples));
        } else {
          std::snprintf(buf, sizeof(buf),
                        "%s: live planning costs %.1f us more than fitting, and saves %.1f us of exchange",
                        window ? "window" : "live", extra_us, saved_us);
        }
        why = buf;
      } else {
        why = window ? "window (--order-source window)" : "live (--order-source live)";
      }
      orders.push_back(PendingOrder{m, l, epochs[m][static_cast<size_t>(l)], std::move(d), std::move(k), window});
    }
  }
  {
    std::lock_guard lock(mu_);
    orders_ = std::move(orders);
    order_decisions_ = std::move(decisions);
    boundary_work_.store(true, std::memory_order_release);
  }
  if (wake_) wake_();
}

void OnlineController::migrate(const Proposal& p, const std::vector<std::vector<std::vector<int32_t>>>& from,
                               double before_s, const std::string& reason) {
  struct Step {
    size_t model;
    int32_t layer;
  };
  std::vector<Step> layers;
  size_t pm = 0;
  std::vector<size_t> model_of;  // proposal model index -> controller model index
  for (size_t m = 0; m < models_.size(); ++m) {
    if (models_[m].host) model_of.push_back(m);
  }
  for (pm = 0; pm < p.owners.size(); ++pm) {
    const size_t m = model_of[pm];
    for (size_t l = 0; l < p.owners[pm].size(); ++l) {
      if (p.owners[pm][l] != from[m][l]) layers.push_back(Step{m, static_cast<int32_t>(l)});
    }
  }
  if (layers.empty()) return;
  // Device ranks hold a bounded number of expert copies: a deployment whose moves do not fit is
  // refused before anything is copied (the plan in force stays).
  for (pm = 0; pm < p.owners.size(); ++pm) {
    auto fits = models_[model_of[pm]].host->check_moves(p.owners[pm]);
    if (!fits) {
      std::lock_guard lock(mu_);
      ++failures_;
      last_decision_ = "migration refused: " + fits.error().message + "; the plan in force stays";
      return;
    }
  }
  const int64_t version = plan_version_.load() + 1;
  {
    std::lock_guard lock(mu_);
    migrating_ = true;
    layers_done_ = 0;
    layers_total_ = static_cast<int32_t>(layers.size());
    last_decision_ = reason + " (migrating)";
  }
  int64_t moved = 0;
  const size_t queue_limit = static_cast<size_t>(std::max(1, options_.migration_layers_per_step));
  bool stopped = false;
  for (size_t i = 0; i < layers.size() && !stopped; ++i) {
    const auto [m, l] = layers[i];
    const size_t proposal_model =
        static_cast<size_t>(std::find(model_of.begin(), model_of.end(), m) - model_of.begin());
    const auto& owner = p.owners[proposal_model][static_cast<size_t>(l)];
    Commit c;
    c.model = m;
    c.layer = l;
    c.owner = owner;
    c.final_version = i + 1 == layers.size() ? version : 0;
    c.change = PlanSnapshot::Change{0.0, version, 0, before_s, p.candidate_s, reason};
    // Stage this layer's moved experts while the old copies keep serving (double buffering).
    const auto t0 = std::chrono::steady_clock::now();
    int64_t bytes = 0;
    std::string stage_failure;
    try {
      for (size_t e = 0; e < owner.size(); ++e) {
        if (owner[e] == from[m][static_cast<size_t>(l)][e]) continue;
        c.staged.push_back(models_[m].host->stage(l, static_cast<int32_t>(e), owner[e]));
        bytes += c.staged.back()->bytes;
        ++moved;
      }
    } catch (const std::exception& e) {
      stage_failure = e.what();
    }
    if (!stage_failure.empty()) {
      // This layer's copies are dropped (never used); the layers already queued still switch, so
      // the owners in force stay consistent, but the deployment is not completed.
      c.staged.clear();
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || commits_.empty(); });
      ++failures_;
      migrating_ = false;
      last_decision_ = "migration stopped at layer " + std::to_string(l) + ": " + stage_failure;
      return;
    }
    const double copy_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::unique_lock lock(mu_);
    if (bytes > 0 && copy_s > 0) {
      migration_bytes_per_s_ = 0.7 * migration_bytes_per_s_ + 0.3 * (static_cast<double>(bytes) / copy_s);
    }
    cv_.wait(lock, [&] { return stop_ || commits_.size() < queue_limit; });
    if (stop_) {
      stopped = true;
      break;
    }
    if (c.final_version > 0) c.change.moved_experts = moved;
    commits_.push_back(std::move(c));
    boundary_work_.store(true, std::memory_order_release);
    lock.unlock();
    if (wake_) wake_();
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stop_ || commits_.empty(); });
  if (stop_ || stopped) {  // shutting down: what was not committed never applies
    migrating_ = false;
    return;
  }
  gate_.switched(now_s());
  last_decision_ = reason;
}

Result<void> OnlineController::control(ReplanAction action) {
  switch (action) {
    case ReplanAction::kFreeze: frozen_ = true; return {};
    case ReplanAction::kUnfreeze: frozen_ = false; return {};
    case ReplanAction::kTrigger:
      if (options_.replan == ReplanMode::kOff) {
        return Error::invalid("action", "replanning is off (start the engine with --replan order or full)");
      }
      {
        std::lock_guard lock(mu_);
        trigger_ = true;
      }
      cv_.notify_all();
      return {};
  }
  return {};
}

PlanSnapshot OnlineController::snapshot() const {
  PlanSnapshot s;
  s.enabled = true;
  s.replan_mode = replan_mode_name(options_.replan);
  s.order_source = order_source_name(options_.order_source);
  s.frozen = frozen_.load();
  s.uptime_s = now_s();
  s.stats_half_life_s = options_.stats_half_life_s;
  std::vector<WindowStats> stats;
  for (const auto& w : windows_) stats.push_back(w->snapshot());
  std::lock_guard lock(mu_);
  s.plan_version = plan_version_.load();
  s.expert_migrations_total = migrations_total_.load();
  s.placement_supported = true;
  for (const auto& m : models_) s.placement_supported = s.placement_supported && m.host != nullptr;
  s.steps_per_second = stats.empty() ? 0.0 : stats[0].steps_per_second;
  s.planner_runs_total = runs_;
  s.planner_failures_total = failures_;
  s.planner_overruns_total = overruns_;
  s.switches_total = switches_;
  s.last_plan_seconds = last_plan_s_;
  s.last_decision = last_decision_;
  s.predicted_current_s = current_s_;
  s.predicted_fresh_s = fresh_s_;
  s.recovered_fraction = current_s_ > 0 ? std::min(1.0, fresh_s_ / current_s_) : 1.0;
  s.predicted_migration_s = migration_s_;
  s.candidate_moves = candidate_moves_;
  s.migration_in_progress = migrating_;
  s.migration_layers_done = layers_done_;
  s.migration_layers_total = layers_total_;
  s.history = history_;
  s.timeline = timeline_;
  const std::vector<double> speeds = options_.rank_speeds;
  for (size_t m = 0; m < models_.size(); ++m) {
    const auto& om = models_[m];
    const auto& c = *om.config;
    const WindowStats& ws = stats[m];
    PlanSnapshot::Model pm;
    pm.name = om.name;
    pm.num_ranks = om.num_ranks;
    pm.num_experts = c.num_experts;
    pm.row_bytes = c.token_bytes();
    const std::vector<double> measured = options_.measure_rank_speeds ? measured_speeds_ : std::vector<double>{};
    for (int32_t r = 0; r < om.num_ranks; ++r) {
      PlanSnapshot::Rank rk;
      if (!speeds.empty()) rk.compute_speed = speeds[static_cast<size_t>(r)];
      if (measured.size() == static_cast<size_t>(om.num_ranks)) rk.compute_speed = measured[static_cast<size_t>(r)];
      rk.expert_seconds_per_step = ws.ranks[static_cast<size_t>(r)].expert_seconds;
      rk.exchange_seconds_per_step = ws.ranks[static_cast<size_t>(r)].exchange_seconds;
      rk.rows_per_step = ws.ranks[static_cast<size_t>(r)].rows;
      pm.ranks.push_back(rk);
    }
    double scaled = 0, rows = 0;
    for (const auto& rk : pm.ranks) {
      scaled += rk.expert_seconds_per_step * rk.compute_speed;
      rows += rk.rows_per_step;
    }
    pm.expert_seconds_per_row = rows > 0 ? scaled / rows : ws.expert_seconds_per_row;
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
      PlanSnapshot::Layer pl;
      pl.layer = l;
      pl.owner = owners_[m][static_cast<size_t>(l)];
      pl.expert_load = ws.expert_load(l);
      if (static_cast<size_t>(l) < ws.rank_expert.size())
        pl.rank_expert_tokens = ws.rank_expert[static_cast<size_t>(l)];
      if (static_cast<size_t>(l) < order_decisions_[m].size())
        pl.order_decision = order_decisions_[m][static_cast<size_t>(l)];
      if (pl.expert_load.empty()) pl.expert_load.assign(static_cast<size_t>(c.num_experts), 0.0);
      pl.load_balance = balance(pl.expert_load);
      if (!pl.owner.empty()) {
        const TrafficMatrix t = layer_traffic(ws, l, pl.owner, int64_t{c.hidden_size} * 4);
        pl.traffic_bytes.assign(t.bytes.begin(), t.bytes.end());
        std::vector<double> per_rank(static_cast<size_t>(om.num_ranks), 0.0);
        for (int32_t e = 0; e < c.num_experts; ++e) {
          per_rank[static_cast<size_t>(pl.owner[static_cast<size_t>(e)])] += pl.expert_load[static_cast<size_t>(e)];
        }
        pl.rank_balance = balance(per_rank);
      }
      const auto& lw = ws.layers[static_cast<size_t>(l)];
      pl.a2a_predicted_s = lw.last.estimated_seconds;
      pl.a2a_measured_s = lw.last.measured_seconds;
      pl.a2a_lower_bound_s = lw.last.lower_bound_seconds;
      pl.order_source = lw.last.order_source;
      pl.order_strategy = lw.last.dispatch_strategy;
      pl.plan_us = lw.plan_us;
      pl.fit_us = lw.fit_us;
      pl.count_us = lw.count_us;
      pl.window_penalty_us = lw.both_samples > 0 ? lw.window_estimate_us - lw.live_estimate_us : 0.0;
      pm.layers.push_back(std::move(pl));
    }
    s.models.push_back(std::move(pm));
  }
  return s;
}

}  // namespace aurora::runtime
