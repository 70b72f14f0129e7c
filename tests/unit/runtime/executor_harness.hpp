// Drives a ModelExecutor directly (no engine): prefill a prompt in chunks on a chosen rank,
// collect logits, decode greedily. For tests that compare logits and tokens.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "aurora/runtime/exchange_plan.hpp"
#include "executor/model_executor.hpp"
#include "kv/block_allocator.hpp"

namespace aurora::runtime::test {

struct Harness {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  std::unique_ptr<ModelExecutor> exec;
  std::vector<BlockAllocator> allocators;

  Harness(std::shared_ptr<const Model> model, int32_t ranks, int32_t max_tokens = 256, int32_t block_size = 4,
          bool aurora_planner = true) {
    ExecutorOptions o;
    o.num_ranks = ranks;
    o.max_tokens_per_step = max_tokens;
    o.max_logits_rows = max_tokens;
    o.kv_block_size = block_size;
    o.kv_blocks_per_rank = 256;
    o.max_context = 512;
    ExchangePlannerFactory planners = [ranks, aurora_planner]() -> std::unique_ptr<ExchangePlanner> {
      if (aurora_planner) return make_aurora_planner(ranks);
      return make_all_at_once_planner();
    };
    exec = std::make_unique<ModelExecutor>(std::move(model), o, *backend, planners);
    for (int32_t r = 0; r < ranks; ++r) allocators.emplace_back(o.kv_blocks_per_rank);
  }

  // Every position's logits of `prompt`, prefilled in chunks of `chunk` tokens on `rank`.
  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt, int32_t chunk, int32_t rank = 0) {
    const int32_t V = exec->model().config.vocab_size;
    std::vector<int32_t> table;
    REQUIRE(allocators[size_t(rank)].allocate(blocks_for_tokens(int64_t(prompt.size()), exec->options().kv_block_size),
                                              table));
    std::vector<float> out;
    for (int32_t start = 0; start < int32_t(prompt.size()); start += chunk) {
      StepBatch b;
      SequenceChunk c;
      c.rank = rank;
      c.tokens = prompt.data() + start;
      c.num_tokens = std::min<int32_t>(chunk, int32_t(prompt.size()) - start);
      c.start_position = start;
      c.block_table = table.data();
      c.num_blocks = int32_t(table.size());
      c.logits = LogitsMode::kAllTokens;
      c.logits_row = 0;
      b.chunks.push_back(c);
      b.num_logits_rows = c.num_tokens;
      const StepResult& r = exec->execute(b);
      out.insert(out.end(), r.logits, r.logits + size_t(c.num_tokens) * V);
    }
    allocators[size_t(rank)].release(table);
    return out;
  }
};

inline int32_t argmax(const float* v, int32_t n) { return int32_t(std::max_element(v, v + n) - v); }

}  // namespace aurora::runtime::test

namespace aurora::runtime::test {

// Greedy decode through the KV cache: prefill `prompt` (in chunks), then one token per step.
inline std::vector<int32_t> greedy_decode(Harness& h, const std::vector<int32_t>& prompt, int32_t steps,
                                          int32_t chunk = 1 << 30, int32_t rank = 0) {
  const int32_t V = h.exec->model().config.vocab_size;
  std::vector<int32_t> seq = prompt;
  std::vector<int32_t> table;
  REQUIRE(h.allocators[size_t(rank)].allocate(
      blocks_for_tokens(int64_t(prompt.size()) + steps, h.exec->options().kv_block_size), table));
  std::vector<int32_t> out;
  int32_t computed = 0;
  while (int32_t(out.size()) < steps) {
    StepBatch b;
    SequenceChunk c;
    c.rank = rank;
    c.start_position = computed;
    c.num_tokens = std::min<int32_t>(chunk, int32_t(seq.size()) - computed);
    c.tokens = seq.data() + computed;
    c.block_table = table.data();
    c.num_blocks = int32_t(table.size());
    const bool last = computed + c.num_tokens == int32_t(seq.size());
    c.logits = last ? LogitsMode::kLast : LogitsMode::kNone;
    c.logits_row = last ? 0 : -1;
    b.chunks.push_back(c);
    b.num_logits_rows = last ? 1 : 0;
    const StepResult& r = h.exec->execute(b);
    computed += c.num_tokens;
    if (last) {
      const int32_t next = argmax(r.logits, V);
      out.push_back(next);
      seq.push_back(next);
    }
  }
  h.allocators[size_t(rank)].release(table);
  return out;
}

}  // namespace aurora::runtime::test
