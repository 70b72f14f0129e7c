// Private: Online Aurora's routes. GET /v1/aurora/plan (the deployment, live statistics and the
// planner's state as JSON, from Engine::plan_snapshot), POST /v1/aurora/replan
// {"action": "trigger" | "freeze" | "unfreeze"} (Engine::replan), and GET /dashboard (one
// self-contained HTML + JS page, no external resources, that polls /v1/aurora/plan). All go
// through the server's API-key gate. Pure functions of their inputs; safe on any thread.
#pragma once

#include <string>
#include <string_view>

#include "aurora/runtime/engine.hpp"
#include "aurora/server/server.hpp"

namespace aurora::server {

// The snapshot as JSON (the /v1/aurora/plan body; docs/online.md lists the fields).
std::string plan_json(const runtime::PlanSnapshot& snapshot);
HttpResponse plan_route(const runtime::Engine& engine);
HttpResponse replan_route(runtime::Engine& engine, std::string_view body);
HttpResponse dashboard_route();
// The page itself (dashboard_page.cpp).
const std::string& dashboard_html();

}  // namespace aurora::server
