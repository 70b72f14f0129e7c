// Building the engine's models: option validation, model + tokenizer loading, KV sizing, expert
// placement, executor and scheduler construction.
#pragma once

#include <memory>
#include <vector>

#include "aurora/runtime/backend.hpp"
#include "aurora/runtime/engine.hpp"
#include "engine/model_instance.hpp"

namespace aurora::runtime {

constexpr int32_t kRoutingWindowSteps = 256;  // sliding window of RoutingStats, in engine steps

// Errors name the option: "engine.num_ranks: must be in [1, 64], got 0".
Result<void> validate_engine_options(const EngineOptions& options);
Result<std::vector<std::unique_ptr<ModelInstance>>> build_model_instances(const EngineOptions& options, Backend& backend);

}  // namespace aurora::runtime
