#include "engine/batch_scheduler.hpp"

#include <algorithm>

#include "aurora/config/check.hpp"

namespace aurora::runtime {

BatchScheduler::BatchScheduler(const SchedulerOptions& options)
    : options_(options), running_per_rank_(static_cast<size_t>(options.num_ranks), 0) {
  for (int32_t r = 0; r < options.num_ranks; ++r) allocators_.emplace_back(options.blocks_per_rank);
  running_.reserve(static_cast<size_t>(options.max_num_seqs));
  next_running_.reserve(static_cast<size_t>(options.max_num_seqs));
  scheduled_.reserve(static_cast<size_t>(options.max_num_seqs));
}

void BatchScheduler::add(Sequence* seq) {
  seq->state = SequenceState::kWaiting;
  waiting_.push_back(seq);
}

void BatchScheduler::remove(Sequence* seq) {
  if (seq->state == SequenceState::kRunning) {
    running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
    --running_per_rank_[static_cast<size_t>(seq->rank)];
  } else if (seq->state == SequenceState::kWaiting) {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq), waiting_.end());
  }
  if (seq->rank >= 0) allocators_[static_cast<size_t>(seq->rank)].release(seq->block_table);
  seq->rank = -1;
  seq->state = SequenceState::kFinished;
}

int64_t BatchScheduler::blocks_used() const {
  int64_t n = 0;
  for (const auto& a : allocators_) n += a.num_used();
  return n;
}

int64_t BatchScheduler::blocks_total() const { return int64_t{options_.blocks_per_rank} * options_.num_ranks; }

bool BatchScheduler::grow(Sequence* seq, int32_t num_tokens) {
  const int32_t need = blocks_for_tokens(int64_t{seq->num_computed} + num_tokens, options_.block_size) -
                       static_cast<int32_t>(seq->block_table.size());
  if (need <= 0) return true;
  return allocators_[static_cast<size_t>(seq->rank)].allocate(need, seq->block_table);
}

void BatchScheduler::preempt(Sequence* seq) {
  allocators_[static_cast<size_t>(seq->rank)].release(seq->block_table);
  --running_per_rank_[static_cast<size_t>(seq->rank)];
  seq->rank = -1;
  seq->num_computed = 0;  // recomputed from scratch (prompt + generated tokens)
  seq->state = SequenceState::kWaiting;
  ++seq->num_preemptions;
  preempted_.push_back(seq);
}

int32_t BatchScheduler::pick_rank(int32_t blocks_needed) const {
  int32_t best = -1;
  for (int32_t r = 0; r < options_.num_ranks; ++r) {
    const auto& a = allocators_[static_cast<size_t>(r)];
    if (a.num_free() < blocks_needed) continue;
    if (best < 0) {
      best = r;
      continue;
    }
    const auto& b = allocators_[static_cast<size_t>(best)];
    if (a.num_free() > b.num_free() ||
        (a.num_free() == b.num_free() &&
         running_per_rank_[static_cast<size_t>(r)] < running_per_rank_[static_cast<size_t>(best)])) {
      best = r;
    }
  }
  return best;
}

const std::vector<ScheduledChunk>& BatchScheduler::schedule() {
  scheduled_.clear();
  preempted_.clear();
  int32_t budget = options_.max_num_batched_tokens;

  // 1. Running sequences, oldest first.
  next_running_.clear();
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    if (seq->state != SequenceState::kRunning) continue;  // preempted by an older one below
    if (budget == 0) {
      next_running_.push_back(seq);
      continue;
    }
    const int32_t n = std::min(seq->num_uncomputed(), budget);
    AURORA_CHECK_MSG(n > 0, "running sequence " << seq->id << " has nothing to compute");
    bool ok = grow(seq, n);
    while (!ok) {
      // Preempt the newest running sequence on the same rank that is not this one.
      Sequence* victim = nullptr;
      for (size_t j = running_.size(); j-- > i + 1;) {
        Sequence* cand = running_[j];
        if (cand->state == SequenceState::kRunning && cand->rank == seq->rank) {
          victim = cand;
          break;
        }
      }
      if (!victim) break;
      preempt(victim);
      ok = grow(seq, n);
    }
    if (!ok) {
      // Nothing newer to evict on this rank: this sequence waits (recompute) instead.
      preempt(seq);
      continue;
    }
    next_running_.push_back(seq);
    scheduled_.push_back(
        ScheduledChunk{seq, seq->num_computed, n, seq->num_computed + n == int32_t(seq->tokens.size())});
    budget -= n;
  }
  running_.swap(next_running_);
  // Preempted sequences go back to the front of the queue, oldest (lowest id) first.
  std::sort(preempted_.begin(), preempted_.end(), [](const Sequence* a, const Sequence* b) { return a->id < b->id; });
  for (auto it = preempted_.rbegin(); it != preempted_.rend(); ++it) waiting_.push_front(*it);

  // 2. Waiting sequences, first come first served (none after a preemption: memory is short).
  while (preempted_.empty() && !waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < options_.max_num_seqs) {
    Sequence* seq = waiting_.front();
    const int32_t blocks_all = blocks_for_tokens(int64_t{seq->num_uncomputed()}, options_.block_size);
    const int32_t rank = pick_rank(blocks_all);
    if (rank < 0) break;  // KV cache full: stays queued
    waiting_.pop_front();
    seq->rank = rank;
    seq->state = SequenceState::kRunning;
    ++running_per_rank_[static_cast<size_t>(rank)];
    const int32_t n = std::min(seq->num_uncomputed(), budget);
    const bool ok = grow(seq, n);
    AURORA_CHECK(ok);
    running_.push_back(seq);
    scheduled_.push_back(
        ScheduledChunk{seq, seq->num_computed, n, seq->num_computed + n == int32_t(seq->tokens.size())});
    budget -= n;
  }
  return scheduled_;
}

}  // namespace aurora::runtime
