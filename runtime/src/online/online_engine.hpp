// The engine with an injected placement policy: create_engine with the online planner's policy
// replaced (tests inject failures, delays and forced migrations through it).
#pragma once

#include <memory>

#include "aurora/runtime/engine.hpp"
#include "online/online_controller.hpp"

namespace aurora::runtime {

Result<std::unique_ptr<Engine>> create_engine_with_policy(const EngineOptions& options, PlacementPolicy policy);

}  // namespace aurora::runtime
