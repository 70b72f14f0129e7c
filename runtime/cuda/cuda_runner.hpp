// CudaModelRunner: runs engine steps (StepBatch -> logits or sampled tokens) of one model on one
// GPU, with bf16 weights (CudaWeights), a bf16 paged KV cache and float32 accumulation.
//
// Two paths:
// - decode steps (every sequence brings one token and wants its next one) run as CUDA graphs, one
//   per batch-size bucket (1, 2, 4, 8, 16, 32, 48, 64, ...; padded rows write no KV and are
//   dropped). Inside a step nothing waits for the host: routing, the active-expert list and the
//   grouped expert GEMVs stay on the device; the host reads back the sampled tokens and the
//   per-expert token counts once, at the end.
// - other steps (prefill chunks, mixed batches) run eagerly: cuBLASLt GEMMs for dense projections
//   over more than kGemvMaxTokens rows; routed experts through cuBLASLt per expert when the model
//   has few experts (one host read of the per-expert offsets per layer), else the grouped launch
//   (the tiled GEMM above 64 positions per expert); chunks of >= 8 tokens through the tensor-core
//   prefill attention, cut into tiles on the host (cuda_runner_attention.cpp).
//
// Memory: the KV cache takes gpu_memory_fraction of the device's memory minus what is in use
// (weights) and the activation buffers sized for max_tokens_per_step; report() says how much.
// Thread safety: one thread drives a runner (the engine thread of its device).
//
// Expert parallelism (enable_expert_parallel, docs/multi_gpu.md): the runner is one rank of a
// model spread over several GPUs. Its weights hold only its experts; in every MoE layer the routed
// items are regrouped by the placement's keys, the per-key counts are all-gathered (every rank
// then plans the same exchange), the token rows go to their experts' ranks and the outputs come
// back through the NCCL communicator in the planner's phase order, on a communication stream that
// events order against the compute stream. Steps run eagerly (the host plans every exchange).
// With ComputeTurns (colocation) the compute segments between exchanges alternate with the other
// model's on the same GPU: the paper's staggered timeline.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/kernels/cuda/gemm.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/sampling.hpp"
#include "aurora/runtime/exchange_plan.hpp"
#include "cuda_weights.hpp"
#include "executor/step_batch.hpp"

namespace aurora::runtime {
struct ExpertPlacement;
struct OrderTemplate;
class ComputeTurns;
}  // namespace aurora::runtime

namespace aurora::runtime::cuda {

class NcclCommunicator;

constexpr int32_t kGemvMaxTokens = 64;  // above this, dense projections use cuBLASLt
// Whether routed experts of steps above kGemvMaxTokens run one cuBLASLt GEMM pair per expert (host
// read of the offsets, stream sync) instead of the grouped launch (the tiled GEMM, which reads
// nothing back to the host): only with AURORA_EXPERT_CUBLASLT=1 (to compare). Runners read it when
// built (their expert lanes) and at every step.
bool expert_cublaslt();
void set_expert_cublaslt(bool on);  // overrides AURORA_EXPERT_CUBLASLT for this process; for tests
void reset_expert_cublaslt();       // back to AURORA_EXPERT_CUBLASLT
// Streams ("lanes") those per-expert GEMMs spread over, each lane with its own gather and gate_up
// scratch and cuBLASLt workspace, so that several experts' GEMMs (each less than a wave of the GPU
// at Mixtral's ~128 tokens per expert) run at once; experts go to the least-loaded lane, and each
// expert's GEMMs are the same whatever its lane (the same bits). CudaRunnerOptions::expert_lanes,
// else AURORA_EXPERT_LANES=N (1..kMaxExpertLanes), else kDefaultExpertLanes. H200, 2026-11-29,
// Mixtral-8x7B 512-token prefill, two rounds, 1 / 2 / 3 / 4 lanes: 57.4 / 52.3 / 47.3 / 48.2 ms and
// 54.1 / 45.7 / 45.3 / 49.9 ms; the experts' stage 39.0 ms on one lane, 32.6 on three.
constexpr int32_t kMaxExpertLanes = 8;
constexpr int32_t kDefaultExpertLanes = 3;
int32_t expert_lanes_for(int32_t requested);

struct CudaRunnerOptions {
  int32_t max_tokens_per_step = 512;  // prefill chunk + decode tokens of one step
  int32_t max_seqs_per_step = 64;     // sequences (and logits rows) per step
  int32_t kv_block_size = 16;
  int32_t max_context = 4096;         // longest sequence
  int64_t kv_cache_tokens = 0;        // 0 = from gpu_memory_fraction
  double gpu_memory_fraction = 0.90;  // of the device's total memory, weights included
  bool use_cuda_graphs = true;
  // The compute stream to run on (e.g. one of an SM-limited green context: heterogeneity
  // emulation); null = the runner creates its own. Not owned.
  cudaStream_t stream = nullptr;
  // The routed experts of decode steps of <= 4 tokens in one launch (kernels::cuda::launch_expert_ffn):
  // 1 always, 0 never, -1 as kernels::cuda::expert_ffn_for's rule (or AURORA_FUSED_FFN) says. The
  // same bits either way.
  int32_t fused_ffn = -1;
  // Lanes of prefill's per-expert cuBLASLt GEMMs (expert_lanes_for): 0 = AURORA_EXPERT_LANES or the
  // default; 1 = all on the runner's stream (always so with a caller's `stream`).
  int32_t expert_lanes = 0;
};

// One rank of an expert-parallel model (see the header comment).
struct ExpertParallelConfig {
  int32_t rank = 0;                                  // this runner's rank in `comm`
  NcclCommunicator* comm = nullptr;                  // not owned; one per model
  std::shared_ptr<const ExpertPlacement> placement;  // must match the weights' held experts
  std::unique_ptr<ExchangePlanner> planner;          // deterministic: every rank plans alike
  ComputeTurns* turns = nullptr;                     // colocation: this GPU's turns, else null
  int32_t turn_index = 0;                            // this model's index in `turns`
  double link_gbps = 2400.0;                         // window-order fits: the estimate's network model
  double phase_latency_s = 20e-6;
};

// A stretch of one stream's work in the last step (timeline), in ms after a reference event.
struct TimelineSpan {
  const char* label = "";  // "gate", "experts", "aggregate+gate", "head", "dispatch", "combine", "step"
  int32_t layer = -1;
  bool comm = false;  // on the communication stream (else the compute stream)
  float start_ms = 0.0f;
  float end_ms = 0.0f;
};

struct CudaMemoryReport {
  std::string device_name;
  int64_t total_bytes = 0;
  int64_t weight_bytes = 0;
  int64_t activation_bytes = 0;
  int64_t kv_cache_bytes = 0;
  int32_t kv_blocks = 0;
  int32_t kv_block_size = 0;
  std::string to_string() const;
};

class CudaModelRunner {
 public:
  static Result<std::unique_ptr<CudaModelRunner>> create(std::shared_ptr<const CudaWeights> weights,
                                                         const CudaRunnerOptions& options);
  ~CudaModelRunner();
  CudaModelRunner(const CudaModelRunner&) = delete;
  CudaModelRunner& operator=(const CudaModelRunner&) = delete;

  // Runs one step (chunks' ranks must be 0). Without `sampling`, the logits rows are copied to the
  // host (StepResult::logits). With it, logits row r is sampled on the GPU with sampling[r] and
  // only the tokens come back, into tokens[r]. Valid until the next execute(). Throws CudaError on
  // a device failure and AURORA_CHECK failures on malformed batches.
  const StepResult& execute(const StepBatch& batch, const kernels::SamplingRow* sampling = nullptr,
                            int32_t* tokens = nullptr);

  // Makes this runner one rank of an expert-parallel model (before the first step). Errors:
  // placement and weights disagree, memory.
  Result<void> enable_expert_parallel(ExpertParallelConfig config);
  bool expert_parallel() const { return ep_ != nullptr; }
  // Colocation: whether this rank takes compute turns in the next step (the group decides per
  // step: a rank without tokens of this model stays out of the rotation).
  void set_uses_turns(bool uses_turns);
  // Online re-placement (engine thread, between steps; every rank of the model together):
  // `placement` is in force from the next step on, and slot_of_key[l][j] is the weight slot of this
  // rank's j-th expert (key order) of MoE layer l. Waits for the previous step to finish.
  void set_expert_placement(std::shared_ptr<const ExpertPlacement> placement,
                            const std::vector<std::vector<int32_t>>& slot_of_key);
  const ExpertPlacement& expert_placement() const;
  // Window order templates of one layer (null: none) and whether steps use them; dropped for a
  // layer whose placement changes. measure_order_sources: rank 0 costs both sources (has_both).
  void set_order_templates(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                           std::shared_ptr<const OrderTemplate> combine, bool use_window);
  void measure_order_sources(bool on);
  // This rank's measured times in the last step (after execute returned; no synchronisation):
  // expert compute and exchanges (count exchange + dispatch + combine, waits included), and per
  // layer the two exchanges' time (0 for dense layers).
  RankStepTiming last_rank_timing(std::vector<double>& exchange_seconds_per_layer) const;
  // Timeline recording (CUDA events at stage boundaries; off by default).
  void enable_timeline(bool on);
  // The last step's spans, relative to `reference` (an event recorded on this device before the
  // step). Call after the step returned.
  std::vector<TimelineSpan> collect_timeline(cudaEvent_t reference) const;

  const CudaWeights& weights() const { return *weights_; }
  const CudaRunnerOptions& options() const { return options_; }
  const CudaMemoryReport& memory() const { return memory_; }
  int32_t num_kv_blocks() const { return memory_.kv_blocks; }
  int32_t max_blocks_per_seq() const { return max_blocks_per_seq_; }
  cudaStream_t stream() const { return stream_; }
  // Whether the last step ran as a graph replay, and the bytes of weights it had to read
  // (dense parts + the experts its tokens selected + the LM head): the roofline's numerator.
  bool last_step_used_graph() const { return last_used_graph_; }
  int64_t last_step_weight_bytes() const { return last_weight_bytes_; }

  // Runs one step eagerly with CUDA events between its stages and returns the time per stage
  // (summed over layers, ms, in first-seen order). Stage times include launch gaps: a profile, not
  // the graph's timing.
  std::vector<std::pair<std::string, double>> profile_step(const StepBatch& batch, const kernels::SamplingRow* sampling,
                                                           int32_t* tokens);

 private:
  struct Buffers;
  struct EpState;
  struct Timeline;
  CudaModelRunner(std::shared_ptr<const CudaWeights> weights, const CudaRunnerOptions& options);
  void allocate();
  void forward(int32_t num_tokens, int32_t num_rows, bool sample, bool decode);
  void set_split(kernels::cuda::GroupedGemvParams& p) const;  // split-k scratch for the GEMV
  // y[p] = RMSNorm(x[rows ? rows[p] : p]) W^T in one GEMV launch (positions <= kGemvNormMaxPositions).
  void norm_project(const float* norm_weight, const int32_t* rows, const bf16* w, int32_t n, float* y,
                    int32_t positions);
  void project(const bf16* x, const bf16* w, int32_t n, int32_t k, float* y, int32_t rows, bool accumulate);
  void dense_ffn(const bf16* x, const CudaFfn& f, int32_t rows, float* out, bool accumulate);
  // The routed experts; with `combine`, a fused expert FFN may also combine: true when it did (the
  // caller then launches no combine). With `logits_ready` (the router's RouteCudaParams::logits_ready)
  // the unfused gate_up routes for itself.
  bool routed_experts(int32_t layer, int32_t num_tokens, bool decode,
                      const kernels::cuda::MoeCombineCudaParams* combine = nullptr,
                      const int32_t* logits_ready = nullptr);
  int32_t bucket_for(int32_t num_seqs) const;
  // The decode graphs' attention bound for contexts of up to `positions` tokens: a power of two,
  // at least 512, at most max_context.
  int32_t context_bucket(int32_t positions) const;
  void mark(const char* stage);  // profiling only
  // Expert parallelism (cuda_expert_parallel.cpp) and the runner buffers it uses.
  struct EpBuffers {
    int32_t* offsets;   // router: per-expert offsets
    int32_t* permuted;  // router: items sorted by expert
    int32_t* position;  // item -> row of expert_out
    bf16* h16;          // post-attention norm, bf16
    bf16* expert_in16;  // [max_tokens, H] scratch
    float* gate_up;     // [max_tokens, 2 I] scratch
    float* expert_out;  // [items, H]
  };
  EpBuffers ep_buffers() const;
  void ep_moe_layer(int32_t layer, int32_t num_tokens);
  void ep_idle_step();
  void cut_prefill_tiles(const StepBatch& batch, bool decode);
  // Layer l's qkv prologue and attention (cuda_runner_attention.cpp).
  void attention(int32_t l, int32_t T, bool decode);
  void step_begin_hooks();
  void step_end_hooks();
  void segment_begin(const char* label, int32_t layer, cudaEvent_t wait_event);
  void segment_end();
  int32_t timeline_begin(const char* label, int32_t layer, bool comm, cudaStream_t stream);
  void timeline_end(int32_t span, cudaStream_t stream);

  std::shared_ptr<const CudaWeights> weights_;
  CudaRunnerOptions options_;
  CudaMemoryReport memory_;
  int32_t max_blocks_per_seq_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Buffers> buf_;
  std::unique_ptr<kernels::cuda::CublasLtRunner> gemm_;
  // Prefill's per-expert cuBLASLt lanes beyond the runner's own stream (expert_lanes_for).
  struct ExpertLane {
    cudaStream_t stream = nullptr;
    cudaEvent_t done = nullptr;
    bf16* in16 = nullptr;
    float* gate_up = nullptr;
    std::unique_ptr<kernels::cuda::CublasLtRunner> gemm;
  };
  std::vector<ExpertLane> lanes_;
  cudaEvent_t lanes_fork_ = nullptr;
  // (batch bucket, context bucket) -> instantiated decode step; the context bucket sizes the
  // partitioned attention's grid (context_bucket).
  std::map<std::pair<int32_t, int32_t>, cudaGraphExec_t> graphs_;
  int32_t positions_bound_ = 0;  // this step's bound on token position + 1 (attention grids)
  // Prefill attention: tiles of this step's prefill chunks (in the input buffer) and the token
  // ranges of its other chunks (decode tokens), cut by cut_prefill_tiles for eager steps.
  bool prefill_tiles_ = false;  // the tensor-core prefill attention takes this model
  int32_t num_prefill_tiles_ = 0;
  std::vector<std::pair<int32_t, int32_t>> untiled_ranges_;
  StepResult result_;
  bool last_used_graph_ = false;
  int64_t last_weight_bytes_ = 0;
  bool profiling_ = false;
  std::vector<cudaEvent_t> profile_events_;
  std::vector<const char*> profile_stages_;
  size_t profile_used_ = 0;
  std::unique_ptr<EpState> ep_;
  std::unique_ptr<Timeline> timeline_;
  int32_t open_segment_ = -1;  // timeline span of the compute segment in progress
};

}  // namespace aurora::runtime::cuda
