#include "aurora/kernels/embedding.hpp"

#include <cstring>

#include "aurora/kernels/kernel_check.hpp"

namespace aurora::kernels::cpu {

void embedding(const EmbeddingParams& p) {
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int32_t id = p.ids[t];
    AURORA_KERNEL_CHECK(id >= 0 && id < p.vocab_size, "token id " << id << " out of range");
    std::memcpy(p.out + int64_t{t} * p.hidden, p.table + int64_t{id} * p.hidden,
                static_cast<size_t>(p.hidden) * sizeof(float));
  }
}

}  // namespace aurora::kernels::cpu
