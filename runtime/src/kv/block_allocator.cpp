#include "kv/block_allocator.hpp"

#include "aurora/config/check.hpp"

namespace aurora::runtime {

BlockAllocator::BlockAllocator(int32_t num_blocks) : num_total_(num_blocks), in_use_(static_cast<size_t>(num_blocks)) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

bool BlockAllocator::allocate(int32_t count, std::vector<int32_t>& table) {
  if (count > num_free()) return false;
  for (int32_t i = 0; i < count; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    in_use_[static_cast<size_t>(b)] = true;
    table.push_back(b);
  }
  return true;
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  for (int32_t b : table) {
    AURORA_CHECK_MSG(b >= 0 && b < num_total_ && in_use_[static_cast<size_t>(b)], "double free of KV block " << b);
    in_use_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
  table.clear();
}

}  // namespace aurora::runtime
