// BlockAllocator: the free list of one rank's paged KV cache. A sequence owns a list of block ids
// (its block table); tokens at position p live in block table[p / block_size], slot p % block_size.
//
// Not thread-safe: only the engine thread allocates and frees.
#pragma once

#include <cstdint>
#include <vector>

namespace aurora::runtime {

class BlockAllocator {
 public:
  explicit BlockAllocator(int32_t num_blocks);

  int32_t num_total() const { return num_total_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_used() const { return num_total_ - num_free(); }

  // Appends `count` blocks to `table`, or nothing (false) when fewer are free.
  bool allocate(int32_t count, std::vector<int32_t>& table);
  // Returns every block of `table` to the free list and clears it.
  void release(std::vector<int32_t>& table);

 private:
  int32_t num_total_;
  std::vector<int32_t> free_;  // a stack: recently freed blocks are reused first (warm in cache)
  std::vector<bool> in_use_;
};

inline int32_t blocks_for_tokens(int64_t tokens, int32_t block_size) {
  return static_cast<int32_t>((tokens + block_size - 1) / block_size);
}

}  // namespace aurora::runtime
