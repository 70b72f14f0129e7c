// ModelExecutor: runs one forward step of a Model over N expert-parallel ranks.
//
// Each rank owns the sequences (and their paged KV cache) the scheduler assigned to it and runs
// attention for them (attention is data parallel; dense weights are shared). In every MoE layer a
// rank routes its tokens, sends each (token, expert) row to the expert's owner through the
// Communicator (dispatch), runs its own experts on what it received, and sends the outputs back
// (combine); both exchanges follow the ExchangePlanner's phase order. Every kernel is row-wise and
// the combine sums a token's experts in a fixed order, so a sequence's logits are bit-identical
// whatever the batch around it and however many ranks there are.
//
// Threading: execute() is called by the engine thread; it runs rank 0 itself and ranks 1..N-1 on
// a RankPool. Buffers are allocated once (sized by ExecutorOptions); a step allocates nothing on
// the hot path. Not thread-safe: one caller at a time.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "aurora/runtime/backend.hpp"
#include "aurora/runtime/communicator.hpp"
#include "aurora/runtime/exchange_plan.hpp"
#include "aurora/runtime/rank_emulation.hpp"
#include "comm/order_template.hpp"
#include "executor/expert_placement.hpp"
#include "executor/rank_pool.hpp"
#include "executor/step_batch.hpp"
#include "model/model.hpp"

namespace aurora::runtime {

struct ExecutorOptions {
  int32_t num_ranks = 1;
  int32_t max_tokens_per_step = 512;  // all ranks together
  int32_t max_seqs_per_step = 64;     // all ranks together
  int32_t max_logits_rows = 64;
  int32_t kv_block_size = 16;
  int32_t kv_blocks_per_rank = 256;
  int32_t max_context = 4096;  // longest sequence: block table width, attention workspace
  double link_gbps = 400.0;    // network model of the window order's estimates
  double phase_latency_s = 5e-6;
  RankEmulation emulation;  // pacing of links and expert compute (off by default)
};

class ModelExecutor {
 public:
  // `planners` makes one ExchangePlanner per rank (planners keep workspace; ranks plan alike).
  ModelExecutor(std::shared_ptr<const Model> model, const ExecutorOptions& options, Backend& backend,
                const ExchangePlannerFactory& planners);
  ~ModelExecutor();

  // Runs the step; the result (and its logits) is valid until the next execute(). Throws on a
  // bug (bad batch); the communicator is rebuilt after a failed step.
  const StepResult& execute(const StepBatch& batch);

  // Swaps the expert placement between steps (on CPU moving an expert is re-pointing weights;
  // the CUDA backend will copy them). Returns the number of experts that changed rank.
  int64_t set_placement(ExpertPlacement placement);
  const ExpertPlacement& placement() const { return placement_; }

  // --- Online re-planning (runtime/src/online). Engine thread, between steps, unless noted. ---
  // Per-layer transfer order: plan each exchange from the step's counts (live, the default), or,
  // with use_window, fit the templates (planned from the statistics window) to the counts. The
  // templates are kept either way, so that measuring steps can cost both.
  void set_order_templates(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                           std::shared_ptr<const OrderTemplate> combine, bool use_window);
  bool has_order_template(int32_t layer) const;
  // The next steps also cost the source they do not use (rank 0, layers with a template), so that
  // both can be compared on the same counts (LayerExchangeCost::has_both).
  void measure_order_sources(bool on) { measure_both_ = on; }
  // The weights expert `expert` of `layer` is computed with: the model's, or a migrated copy. Any
  // thread (a background migration reads them while steps run).
  FfnWeights expert_weights(int32_t layer, int32_t expert) const;
  // Puts one MoE layer under a new placement computed with `weights` (one per expert; they must
  // stay valid until replaced). Drops the layer's order templates. Returns the experts that
  // changed rank.
  int64_t switch_layer(int32_t layer, LayerPlacement placement, const std::vector<FfnWeights>& weights);
  void set_placement_version(int64_t version) { placement_.version = version; }

  const Model& model() const { return *model_; }
  const ExecutorOptions& options() const { return options_; }
  int32_t max_blocks_per_seq() const { return max_blocks_per_seq_; }

 private:
  struct RankState;

  void run_rank(int32_t rank, const StepBatch& batch);
  void attention_block(RankState& rs, int32_t layer, int32_t num_tokens);
  void mlp_block(RankState& rs, int32_t layer, int32_t num_tokens);
  void moe_block(RankState& rs, int32_t layer, int32_t num_tokens);
  void compute_logits(RankState& rs, const StepBatch& batch);

  std::shared_ptr<const Model> model_;
  ExecutorOptions options_;
  Backend& backend_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<RankPool> pool_;
  ExpertPlacement placement_;
  // [layer][expert]: written under weights_mu_ between steps, read by rank threads during steps.
  std::vector<std::vector<FfnWeights>> expert_weights_;
  mutable std::mutex weights_mu_;
  struct LayerOrder {
    std::shared_ptr<const OrderTemplate> dispatch, combine;
    bool use_window = false;
  };
  std::vector<LayerOrder> orders_;  // [layer]
  bool measure_both_ = false;
  int32_t max_blocks_per_seq_ = 0;
  std::vector<std::unique_ptr<RankState>> ranks_;
  DeviceBuffer logits_;
  StepResult result_;
};

}  // namespace aurora::runtime
