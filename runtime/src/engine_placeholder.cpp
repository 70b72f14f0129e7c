// Placeholder until the engine lands (issue 3): keeps `aurora` linkable.
#include "aurora/runtime/engine.hpp"

namespace aurora::runtime {

Result<std::unique_ptr<Engine>> create_engine(const EngineOptions& /*options*/) {
  return Error::make(ErrorCode::kUnsupported, "the engine is not implemented yet");
}

}  // namespace aurora::runtime
