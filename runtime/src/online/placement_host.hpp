// PlacementHost: one model's expert-parallel execution as the online planner drives it: which rank
// owns each expert, how an expert's weights are copied to another rank (in the background, while
// steps run on the old copy: double buffering), how a layer switches to its new owners (between
// steps), and the per-layer transfer-order templates. The online machinery only talks to this
// interface, so it is the same for CPU ranks (make_executor_placement_host: in-process ranks of a
// ModelExecutor, copies through the Backend) and for GPU ranks (an implementation over the device
// runners: copies on a side stream to the destination GPU).
//
// Threads: stage() runs on the planner thread while the engine thread steps; everything else runs
// on the engine thread between steps. A staged copy is used only after commit_layer().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "aurora/config/error.hpp"
#include "comm/order_template.hpp"

namespace aurora::runtime {

class Backend;
class ModelExecutor;

// A copy of one expert's weights made on its new rank, not yet in use.
class StagedExpert {
 public:
  virtual ~StagedExpert() = default;
  int32_t expert = 0;
  int32_t rank = 0;
  int64_t bytes = 0;
};

class PlacementHost {
 public:
  virtual ~PlacementHost() = default;
  virtual int32_t num_ranks() const = 0;
  // The owners in force, [layer][expert] (empty for dense layers). Engine thread.
  virtual std::vector<std::vector<int32_t>> owners() const = 0;
  virtual int64_t bytes_per_expert() const = 0;
  virtual int64_t bytes_per_weight() const = 0;

  // Planner thread: copies expert `expert` of `layer` from where it is computed now to `dst_rank`.
  virtual std::unique_ptr<StagedExpert> stage(int32_t layer, int32_t expert, int32_t dst_rank) = 0;
  // Engine thread, between steps: `layer` is computed with `owner` from the next step on, the
  // staged experts with their new copies; the copies they replace are released. Returns the
  // number of experts that changed rank.
  virtual int64_t commit_layer(int32_t layer, const std::vector<int32_t>& owner,
                               std::vector<std::unique_ptr<StagedExpert>> staged) = 0;
  virtual void set_version(int64_t version) = 0;
  // Planner thread, before a migration stages anything: whether the moves from the owners in force
  // to `owners` ([layer][expert]) fit (device ranks: free expert slots per layer and rank). An
  // error refuses the whole migration; the plan in force stays.
  virtual Result<void> check_moves(const std::vector<std::vector<int32_t>>& owners) const {
    (void)owners;
    return {};
  }

  // Engine thread: the layer's window order (null = none) and whether steps use it.
  virtual void set_order(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                         std::shared_ptr<const OrderTemplate> combine, bool use_window) = 0;
  // Engine thread: the next step costs both order sources (rank 0).
  virtual void measure_order_sources(bool on) = 0;
};

// CPU ranks: the executor's experts; a moved expert gets its own buffer (gate | up | down) from
// `backend`, filled with backend copies on a stream of its own.
std::unique_ptr<PlacementHost> make_executor_placement_host(ModelExecutor& executor, Backend& backend);

}  // namespace aurora::runtime
