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
Result<std::vector<std::unique_ptr<ModelInstance>>> build_model_instances(const EngineOptions& options,
                                                                          Backend& backend);

Result<std::vector<std::unique_ptr<ModelInstance>>> build_instances_for(
    const EngineOptions& options, Backend& backend, std::vector<std::shared_ptr<const Model>> models);

// create_engine without the catch-all for std::bad_alloc and other exceptions around it.
Result<std::unique_ptr<Engine>> create_engine_unchecked(const EngineOptions& options);

// An engine over models built in process (benchmarks and tests: random weights of any shape).
// options.model_dirs is ignored; models without a tokenizer get one that passes ids through.
Result<std::unique_ptr<Engine>> create_engine_with_models(const EngineOptions& options,
                                                          std::vector<std::shared_ptr<const Model>> models);

}  // namespace aurora::runtime
