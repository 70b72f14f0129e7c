// BatchScheduler: continuous batching for one model. Every step it decides which sequences run and
// how many of their tokens, under a token budget (max_num_batched_tokens) and a sequence cap
// (max_num_seqs), with a paged KV cache per expert-parallel rank.
//
// Policy (vLLM v1 style, one token budget for prefill and decode):
//  1. Running sequences first, oldest first: a decoding sequence takes 1 token, a sequence still
//     in prefill takes the next chunk that fits the budget. So decodes are never starved by long
//     prompts, and prompts are chunked.
//  2. When a running sequence needs a KV block and its rank has none free, the newest running
//     sequence on that rank is preempted (blocks freed, to be recomputed later; it goes back to
//     the front of the waiting queue). A preemption stops admissions for this step.
//  3. Then waiting sequences, first come first served, while budget, sequence slots and KV blocks
//     last: each goes to the rank with the most free blocks, and only if all its known tokens fit
//     there (so it is not preempted at once). The head of the queue blocks the ones behind it.
// Not thread-safe: the engine thread owns it and the sequences it points to.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "engine/sequence.hpp"
#include "kv/block_allocator.hpp"

namespace aurora::runtime {

struct SchedulerOptions {
  int32_t num_ranks = 1;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 512;
  int32_t block_size = 16;
  int32_t blocks_per_rank = 256;
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int32_t start = 0;  // first token index (== num_computed before the step)
  int32_t num_tokens = 0;
  bool sample = false;  // the chunk reaches the end of the known tokens: draw the next one
};

class BatchScheduler {
 public:
  explicit BatchScheduler(const SchedulerOptions& options);

  void add(Sequence* seq);     // new request: back of the waiting queue
  void remove(Sequence* seq);  // finished or cancelled: out of the queues, KV blocks freed
  // Plans one step. The result is valid until the next call.
  const std::vector<ScheduledChunk>& schedule();
  const std::vector<ScheduledChunk>& last_scheduled() const { return scheduled_; }
  // Sequences preempted by the last schedule() call.
  const std::vector<Sequence*>& preempted() const { return preempted_; }

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int64_t blocks_used() const;
  int64_t blocks_total() const;
  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  bool grow(Sequence* seq, int32_t num_tokens);  // blocks for num_computed + num_tokens
  void preempt(Sequence* seq);
  int32_t pick_rank(int32_t blocks_needed) const;

  SchedulerOptions options_;
  std::vector<BlockAllocator> allocators_;  // [rank]
  std::vector<int32_t> running_per_rank_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // admission order
  std::vector<ScheduledChunk> scheduled_;
  std::vector<Sequence*> preempted_;
  std::vector<Sequence*> next_running_;
};

}  // namespace aurora::runtime
