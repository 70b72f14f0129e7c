// Engine: the public API of Aurora's runtime. The server, the CLI and the benchmarks use only this
// header (plus request.hpp, token_sink.hpp and tokenizer.hpp).
//
// Thread safety: every method may be called from any thread. The engine runs its own threads
// (one engine thread per device); submit() only enqueues and never waits for a step.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/runtime/online.hpp"
#include "aurora/runtime/rank_emulation.hpp"
#include "aurora/runtime/request.hpp"
#include "aurora/runtime/token_sink.hpp"

namespace aurora::runtime {

class Tokenizer;

struct ModelInfo {
  std::string name;             // as served in /v1/models
  int32_t max_context_len = 0;  // prompt + max_tokens must fit
  int32_t vocab_size = 0;
  std::vector<int32_t> eos_token_ids;
  int32_t num_layers = 0;
  int32_t num_experts = 0;
};

// A snapshot of the engine's counters and gauges (cheap; safe to call per /metrics scrape).
struct EngineStats {
  int32_t num_requests_running = 0;
  int32_t num_requests_waiting = 0;
  double kv_cache_usage = 0.0;  // fraction of KV blocks in use, 0..1
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generation_tokens_total = 0;
  int64_t num_steps_total = 0;
  int64_t num_preemptions_total = 0;
  // Whether the engine thread is making progress (for readiness): seconds since it last finished a
  // step (or, idle, was given work), counted only while requests are running or waiting (0 when
  // idle); steps that failed (their requests got errors) in a row, reset by a step that succeeds.
  double seconds_without_progress = 0.0;
  int64_t consecutive_failed_steps = 0;
  int64_t failed_steps_total = 0;
  // Aurora's own: per model, per layer.
  struct LayerStats {
    std::vector<double> expert_load;  // tokens per expert over the statistics window
    double load_balance = 1.0;        // max over mean expert load
    double a2a_seconds = 0.0;         // measured (or simulated on CPU) all-to-all time, last step
    double a2a_lower_bound_seconds = 0.0;
    double a2a_measured_seconds = 0.0;  // wall time of the last step's exchanges (waits included)
  };
  std::map<std::string, std::vector<LayerStats>> layers;  // keyed by model name
  int64_t plan_version = 0;
  int64_t expert_migrations_total = 0;
};

struct EngineOptions {
  std::vector<std::string> model_dirs;   // empty = the embedded tiny model; two = colocated
  std::string device = "auto";           // "cpu", "cuda:0", "auto"
  int32_t num_ranks = 1;                 // expert-parallel ranks (in-process on CPU)
  int32_t max_num_seqs = 64;             // running batch cap
  int32_t max_num_batched_tokens = 512;  // per step, prefill chunks included
  int32_t max_waiting = 256;             // waiting queue cap; past it submit() fails (kResourceExhausted)
  int32_t kv_block_size = 16;            // tokens per KV block
  int64_t kv_cache_tokens = 0;           // 0 = derive from memory
  uint64_t seed = 0;                     // default sampling seed base
  std::string chat_template;             // "" = from tokenizer_config.json; "chatml" | "llama" | "plain"
  // Prompt tokens the waiting queue may hold next to max_waiting (0 = the larger of
  // 32 x max_num_batched_tokens and 1024 x max_waiting); past it submit() fails
  // (kResourceExhausted). An empty queue always takes one request.
  int64_t max_waiting_tokens = 0;
  // Weights: random, from each model directory's config.json alone (no checkpoint read; on a GPU
  // they are generated on the device). For benchmarks and load tests.
  bool random_weights = false;
  // GPU backends: the share of the device's memory the engine may use (weights + activations + KV
  // cache); the KV cache takes what is left of it unless kv_cache_tokens is set.
  double gpu_memory_fraction = 0.90;
  // Online Aurora: live statistics, per-step transfer order, background re-placement (online.hpp).
  OnlineOptions online;
  // CPU ranks paced like a cluster (slower links, expert compute per row): rank_emulation.hpp.
  RankEmulation emulation;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Queues a request. Fails with kInvalidArgument (e.g. prompt + max_tokens > context, unknown
  // model), kResourceExhausted (waiting queue full) or kUnavailable (shutting down).
  virtual Result<RequestId> submit(GenerationRequest request, std::shared_ptr<TokenSink> sink) = 0;
  // Cancels a request; its sink gets on_finish(kCancelled) and its KV blocks are freed within one
  // step. Unknown or finished ids are ignored.
  virtual void cancel(RequestId id) = 0;

  virtual EngineStats stats() const = 0;
  // Just the progress fields of stats() (seconds_without_progress, consecutive_failed_steps), cheap
  // enough for every /health probe; the other fields are left at their defaults.
  virtual EngineStats progress() const { return stats(); }
  virtual std::vector<ModelInfo> models() const = 0;
  // The tokenizer of a model ("" = first). Lives as long as the engine; thread-safe (const).
  virtual const Tokenizer& tokenizer(const std::string& model = "") const = 0;
  virtual bool ready() const = 0;

  // Online Aurora (online.hpp): the current deployment, statistics and planner state, and the
  // replanning controls. Engines without an online planner report enabled = false and refuse
  // replan() with kUnsupported.
  virtual PlanSnapshot plan_snapshot() const { return {}; }
  virtual Result<void> replan(ReplanAction action) {
    (void)action;
    return Error::make(ErrorCode::kUnsupported, "this engine has no online planner");
  }

  // Stops admitting, lets running requests finish until the deadline, then cancels the rest and
  // joins the engine threads. Idempotent.
  virtual void shutdown(std::chrono::milliseconds drain_timeout) = 0;
};

// Builds the engine (loads models, starts engine threads). Errors name the offending file/field.
Result<std::unique_ptr<Engine>> create_engine(const EngineOptions& options);

}  // namespace aurora::runtime
