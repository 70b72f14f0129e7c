// The planner's version string (placeholder until the planner lands).
#pragma once
namespace aurora::sched {
const char* planner_version();
}  // namespace aurora::sched
