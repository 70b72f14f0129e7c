#include "aurora/kernels/moe_exchange.hpp"

#include <algorithm>

namespace aurora::kernels::cpu {

void regroup_by_key(const RegroupByKeyParams& p) {
  p.key_offsets[0] = 0;
  for (int32_t k = 0; k < p.num_experts; ++k) {
    const int32_t e = p.expert_of_key[k];
    p.key_offsets[k + 1] = p.key_offsets[k] + (p.expert_offsets[e + 1] - p.expert_offsets[e]);
  }
  for (int32_t e = 0; e < p.num_experts; ++e) {
    const int32_t base = p.key_offsets[p.key_of_expert[e]];
    for (int32_t i = p.expert_offsets[e]; i < p.expert_offsets[e + 1]; ++i) {
      const int32_t item = p.permuted_item[i];
      const int32_t pos = base + (i - p.expert_offsets[e]);
      p.key_permuted_item[pos] = item;
      p.item_position[item] = pos;
    }
  }
}

}  // namespace aurora::kernels::cpu
