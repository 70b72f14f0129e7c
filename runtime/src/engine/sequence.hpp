// Sequence: the engine's state for one request, from submit() to on_finish(). Owned and touched
// only by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "aurora/runtime/request.hpp"
#include "aurora/runtime/token_sink.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "engine/logits_processors.hpp"
#include "engine/stop_matcher.hpp"

namespace aurora::runtime {

enum class SequenceState { kWaiting, kRunning, kFinished };

struct Sequence {
  RequestId id = 0;
  GenerationRequest request;
  std::shared_ptr<TokenSink> sink;

  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int32_t num_prompt_tokens = 0;
  int32_t num_computed = 0;  // tokens whose K/V are in the cache (0 again after preemption)
  int32_t rank = -1;         // expert-parallel rank that holds its KV blocks
  std::vector<int32_t> block_table;
  SequenceState state = SequenceState::kWaiting;
  uint64_t seed = 0;  // effective sampling seed
  int32_t num_preemptions = 0;
  bool prompt_counted = false;  // prompt tokens added to the engine totals
  bool first_scheduled = false;

  std::unique_ptr<IncrementalDecoder> decoder;
  StopMatcher stop;
  RequestTiming timing;
  std::vector<float> prompt_logits;
  TokenHistory history;  // for the penalties (kept only when the request asks for one)

  int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - num_prompt_tokens; }
  int32_t num_uncomputed() const { return static_cast<int32_t>(tokens.size()) - num_computed; }
};

}  // namespace aurora::runtime
