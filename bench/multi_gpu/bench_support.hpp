// Shared pieces of aurora-multi-gpu-bench: a sequence driver that builds engine-like steps for a
// set of sequences spread over ranks, timing helpers, the utilisation of a timeline, the
// simulator's model of measured steps, and the timeline SVG.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "aurora/config/model_config.hpp"
#include "aurora/scheduler/deployment.hpp"
#include "aurora/scheduler/model_stats.hpp"
#include "cuda_runner.hpp"
#include "executor/expert_placement.hpp"
#include "executor/step_batch.hpp"

namespace aurora::bench {

using Clock = std::chrono::steady_clock;
double median(std::vector<double> v);
// `v` with `prec` decimals; the prediction's error against the measurement as "+12%" ("-" when
// nothing was measured).
std::string fmt(double v, int prec = 1);
std::string pct(double predicted, double measured);
double seconds_since(Clock::time_point t0);

// B sequences of one model, sequence i on rank i % ranks, with its own KV blocks on that rank.
class SequenceSet {
 public:
  SequenceSet(int32_t num_seqs, int32_t prompt_len, int32_t ranks, int32_t blocks_per_seq, int32_t vocab,
              uint32_t seed);
  // Prefill steps (whole prompts, at most max_tokens per step), then decode steps.
  std::vector<runtime::StepBatch> prefill_batches(int32_t max_tokens);
  const runtime::StepBatch& decode_batch();
  // Takes the sampled tokens of the batch last built (rows in chunk order).
  void accept(const runtime::StepBatch& batch, const std::vector<int32_t>& tokens);
  std::vector<kernels::SamplingRow>& rows() { return rows_; }
  int32_t num_seqs() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  std::vector<std::vector<int32_t>> tokens_, blocks_;
  std::vector<int32_t> rank_;
  std::vector<int32_t> seq_of_row_;
  runtime::StepBatch decode_;
  std::vector<kernels::SamplingRow> rows_;
};

// A compute or communication interval of a GPU, in ms after a reference event.
struct Span {
  int32_t gpu = 0, model = 0;
  runtime::cuda::TimelineSpan s;
};

// Union of the compute spans per GPU over the wall time, averaged over GPUs.
double utilisation(const std::vector<Span>& spans, int32_t num_gpus, double wall_ms);

// Per-layer measurements of one model's expert-parallel step (timeline + routed counts) in the
// simulator's terms: gate (attention + router, the segment before the dispatch), experts (per
// byte processed), aggregation (the final segment), gpu-form traffic from the counts. Times are
// the maxima over GPUs, or those of `only_gpu` (>= 0: the reference GPU of a heterogeneous run).
sched::ModelStats model_stats_from_step(const config::ModelConfig& c, const std::vector<Span>& spans, int32_t model,
                                        const runtime::StepResult& result, int32_t num_gpus,
                                        const runtime::ExpertPlacement& placement, int32_t only_gpu = -1);
sched::ModelDeployment deployment_of(const runtime::ExpertPlacement& placement);

// Per-exchange overhead measured in a timeline: median of (exchange span - bytes / bandwidth).
double measured_exchange_overhead_s(const std::vector<Span>& spans, double bytes_per_s, int64_t typical_bytes);

// Draws panels of spans (lanes per GPU: model compute and communication) as one SVG file.
void write_timeline_svg(const std::string& path, const std::vector<std::pair<std::string, std::vector<Span>>>& panels,
                        int32_t num_gpus, const std::vector<std::string>& model_names);

}  // namespace aurora::bench
