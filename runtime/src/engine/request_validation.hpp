// Checks a GenerationRequest against the model it targets, before it is queued. Errors name the
// field and the value, in the OpenAI parameter names the server also uses.
#pragma once

#include "aurora/runtime/request.hpp"
#include "engine/model_instance.hpp"

namespace aurora::runtime {

Result<void> validate_request(const GenerationRequest& request, const ModelInstance& model);

}  // namespace aurora::runtime
