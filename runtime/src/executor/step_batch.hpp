// StepBatch: what one engine step asks the model executor to compute, and StepResult: what comes
// back (logits rows, routing counts, all-to-all cost). Plain value types owned by the engine.
#pragma once

#include <cstdint>
#include <vector>

namespace aurora::runtime {

enum class LogitsMode {
  kNone,       // prefill chunk that does not reach the end of the known tokens
  kLast,       // the last token's logits (sampling)
  kAllTokens,  // every token's logits (tests against transformers)
};

struct SequenceChunk {
  int32_t rank = 0;                 // the expert-parallel rank that owns the sequence's KV
  const int32_t* tokens = nullptr;  // [num_tokens] ids to run
  int32_t num_tokens = 0;
  int32_t start_position = 0;            // position of tokens[0]; KV of [0, start) is cached
  const int32_t* block_table = nullptr;  // [num_blocks]: covers start_position + num_tokens
  int32_t num_blocks = 0;
  LogitsMode logits = LogitsMode::kNone;
  int32_t logits_row = -1;  // first row of StepResult::logits this chunk writes
};

struct StepBatch {
  std::vector<SequenceChunk> chunks;
  int32_t num_logits_rows = 0;
};

struct LayerExchangeCost {
  const char* dispatch_strategy = "";  // the planner's choice for the dispatch
  double estimated_seconds = 0.0;      // dispatch + combine, planner's cost model
  double lower_bound_seconds = 0.0;    // dispatch + combine lower bounds
  int64_t bytes = 0;                   // off-diagonal bytes moved (dispatch + combine)
  int32_t num_phases = 0;              // dispatch + combine phases
  // Measured (wall clock, seconds) and where the order came from. The collectives' times are the
  // minimum over ranks (the last rank to arrive waits for nobody); planning and fitting are rank 0's.
  const char* order_source = "live";  // "live": planned from the step's counts; "window": fitted template
  double measured_seconds = 0.0;      // the two exchanges
  double count_seconds = 0.0;         // the count exchange (all_gather of row counts)
  double plan_seconds = 0.0;          // live planning of both exchanges (0 when the window order ran)
  double fit_seconds = 0.0;           // fitting the window order to the counts (0 when live)
  // Steps that cost both sources (ModelExecutor::measure_order_sources): the predicted time of each
  // source's plan for this step's counts (sched::predict_makespan_s, dispatch + combine).
  bool has_both = false;
  double live_estimated_seconds = 0.0;
  double window_estimated_seconds = 0.0;
};

// What one rank did in a step (measured on that rank).
struct RankStepTiming {
  double expert_seconds = 0.0;    // expert FFNs
  double exchange_seconds = 0.0;  // count exchange + dispatch + combine, waits included
  int64_t rows_computed = 0;      // (token, expert) rows its experts processed
};

struct StepResult {
  const float* logits = nullptr;  // [num_logits_rows, vocab]
  int32_t num_logits_rows = 0;
  // Tokens sent from each rank to each expert, per layer: [layer][rank * num_experts + expert].
  // Dense layers keep an empty vector.
  std::vector<std::vector<int64_t>> routed_tokens;
  std::vector<LayerExchangeCost> exchange;  // [layer]
  std::vector<RankStepTiming> rank_timing;  // [rank] (executors that measure it; else empty)
  int64_t num_tokens = 0;
};

}  // namespace aurora::runtime
