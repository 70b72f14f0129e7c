#include "aurora_routes.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "aurora/config/json.hpp"
#include "aurora/config/protocol/api_error.hpp"
#include "routes.hpp"

namespace aurora::server {

namespace json = boost::json;
using protocol::ApiError;

namespace {

template <class T>
json::array array_of(const std::vector<T>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v) a.emplace_back(x);
  return a;
}

// Each element of `v` as the JSON object `to_object(element)` returns.
template <class T, class ToObject>
json::array objects_of(const std::vector<T>& v, ToObject to_object) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v) a.emplace_back(to_object(x));
  return a;
}

}  // namespace

std::string plan_json(const runtime::PlanSnapshot& s) {
  json::object o;
  o["object"] = "aurora.plan";
  o["enabled"] = s.enabled;
  o["replan"] = s.replan_mode;
  o["order_source"] = s.order_source;
  o["frozen"] = s.frozen;
  o["placement_supported"] = s.placement_supported;
  o["plan_version"] = s.plan_version;
  o["expert_migrations_total"] = s.expert_migrations_total;
  o["uptime_s"] = s.uptime_s;
  o["stats_half_life_s"] = s.stats_half_life_s;
  o["steps_per_second"] = s.steps_per_second;
  json::object planner;
  planner["runs_total"] = s.planner_runs_total;
  planner["failures_total"] = s.planner_failures_total;
  planner["overruns_total"] = s.planner_overruns_total;
  planner["switches_total"] = s.switches_total;
  planner["last_plan_seconds"] = s.last_plan_seconds;
  planner["last_decision"] = s.last_decision;
  planner["predicted_current_s"] = s.predicted_current_s;
  planner["predicted_fresh_s"] = s.predicted_fresh_s;
  planner["recovered_fraction"] = s.recovered_fraction;
  planner["predicted_migration_s"] = s.predicted_migration_s;
  planner["candidate_moves"] = s.candidate_moves;
  o["planner"] = std::move(planner);
  json::object migration;
  migration["in_progress"] = s.migration_in_progress;
  migration["layers_done"] = s.migration_layers_done;
  migration["layers_total"] = s.migration_layers_total;
  o["migration"] = std::move(migration);
  o["models"] = objects_of(s.models, [](const runtime::PlanSnapshot::Model& m) {
    json::object mo;
    mo["name"] = m.name;
    mo["num_ranks"] = m.num_ranks;
    mo["num_experts"] = m.num_experts;
    mo["row_bytes"] = m.row_bytes;
    mo["expert_seconds_per_row"] = m.expert_seconds_per_row;
    mo["ranks"] = objects_of(m.ranks, [](const auto& r) {
      return json::object{{"compute_speed", r.compute_speed},
                          {"expert_seconds_per_step", r.expert_seconds_per_step},
                          {"exchange_seconds_per_step", r.exchange_seconds_per_step},
                          {"rows_per_step", r.rows_per_step}};
    });
    mo["layers"] = objects_of(m.layers, [](const auto& l) {
      return json::object{{"layer", l.layer},
                          {"owner", array_of(l.owner)},
                          {"expert_load", array_of(l.expert_load)},
                          {"traffic_bytes", array_of(l.traffic_bytes)},
                          {"rank_expert_tokens", array_of(l.rank_expert_tokens)},
                          {"load_balance", l.load_balance},
                          {"rank_balance", l.rank_balance},
                          {"a2a_predicted_s", l.a2a_predicted_s},
                          {"a2a_measured_s", l.a2a_measured_s},
                          {"a2a_lower_bound_s", l.a2a_lower_bound_s},
                          {"order_source", l.order_source},
                          {"order_strategy", l.order_strategy},
                          {"plan_us", l.plan_us},
                          {"fit_us", l.fit_us},
                          {"count_us", l.count_us},
                          {"window_penalty_us", l.window_penalty_us},
                          {"order_decision", l.order_decision}};
    });
    return mo;
  });
  o["history"] = objects_of(s.history, [](const auto& c) {
    return json::object{{"time_s", c.time_s},
                        {"version", c.version},
                        {"moved_experts", c.moved_experts},
                        {"predicted_before_s", c.predicted_before_s},
                        {"predicted_after_s", c.predicted_after_s},
                        {"reason", c.reason}};
  });
  o["timeline"] = objects_of(s.timeline, [](const auto& t) {
    return json::object{
        {"time_s", t.time_s}, {"version", t.version}, {"current_s", t.current_s}, {"fresh_s", t.fresh_s}};
  });
  return json::serialize(o);
}

HttpResponse plan_route(const runtime::Engine& engine) {
  HttpResponse r;
  r.body = plan_json(engine.plan_snapshot());
  return r;
}

HttpResponse replan_route(runtime::Engine& engine, std::string_view body) {
  auto doc = config::JsonDocument::parse(body, "body");
  if (!doc) return error_response(ApiError::from(doc.error()));
  auto action = capture_errors([&] {
    const auto root = doc->root();
    if (!root.is_object()) root.fail("must be an object like {\"action\": \"trigger\"}");
    root.reject_unknown_keys({"action"});
    auto parsed = runtime::parse_replan_action(root["action"].as_string());
    if (!parsed) root["action"].fail(parsed.error().message.substr(parsed.error().message.find(": ") + 2));
    return *parsed;
  });
  if (!action) return error_response(ApiError::from(action.error()));
  auto done = engine.replan(*action);
  if (!done) {
    ApiError e = ApiError::from(done.error());
    if (e.param.empty()) e.param = "action";
    return error_response(e);
  }
  const runtime::PlanSnapshot s = engine.plan_snapshot();
  json::object o;
  o["status"] = "ok";
  o["frozen"] = s.frozen;
  o["plan_version"] = s.plan_version;
  HttpResponse r;
  r.body = json::serialize(o);
  return r;
}

HttpResponse dashboard_route() {
  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = dashboard_html();
  return r;
}

}  // namespace aurora::server
