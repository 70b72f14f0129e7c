#include "aurora/scheduler/version.hpp"
namespace aurora::sched {
const char* planner_version() { return "0.1"; }
}  // namespace aurora::sched
