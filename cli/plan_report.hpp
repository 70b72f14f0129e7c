// Output of `aurora plan`: the plan as JSON (schema in docs/plan-schema.md), and the --compare table as
// text, JSON and an SVG bar chart. Pure functions of a ScenarioPlan.
#pragma once

#include <string>

#include <boost/json/value.hpp>

#include "aurora/scheduler/scenario_planner.hpp"

namespace aurora::cli {

boost::json::value plan_to_json(const sched::ScenarioPlan& plan);
boost::json::value comparison_to_json(const sched::ScenarioPlan& plan);
std::string comparison_table(const sched::ScenarioPlan& plan);
std::string comparison_svg(const sched::ScenarioPlan& plan);

}  // namespace aurora::cli
