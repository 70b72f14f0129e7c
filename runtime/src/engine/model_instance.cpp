#include "engine/model_instance.hpp"

#include <algorithm>

namespace aurora::runtime {

bool ModelInstance::is_eos(int32_t id) const { return std::binary_search(eos_ids.begin(), eos_ids.end(), id); }

}  // namespace aurora::runtime
