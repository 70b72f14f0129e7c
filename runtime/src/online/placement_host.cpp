#include "online/placement_host.hpp"

#include "aurora/config/check.hpp"
#include "aurora/runtime/backend.hpp"
#include "executor/model_executor.hpp"

namespace aurora::runtime {
namespace {

class CpuStagedExpert final : public StagedExpert {
 public:
  DeviceBuffer buffer;  // gate | up | down
  FfnWeights weights;
};

class ExecutorPlacementHost final : public PlacementHost {
 public:
  ExecutorPlacementHost(ModelExecutor& executor, Backend& backend)
      : executor_(executor), backend_(backend), stream_(backend.create_stream()) {
    const auto& c = executor_.model().config;
    owned_.resize(static_cast<size_t>(c.num_layers));
    for (auto& layer : owned_) layer.resize(static_cast<size_t>(c.num_experts));
  }

  int32_t num_ranks() const override { return executor_.options().num_ranks; }

  std::vector<std::vector<int32_t>> owners() const override {
    std::vector<std::vector<int32_t>> out;
    for (const auto& lp : executor_.placement().layers) out.push_back(lp.owner);
    return out;
  }

  int64_t bytes_per_weight() const override { return 4; }
  int64_t bytes_per_expert() const override {
    const auto& c = executor_.model().config;
    return 3 * int64_t{c.hidden_size} * c.moe_intermediate_size * bytes_per_weight();
  }

  std::unique_ptr<StagedExpert> stage(int32_t layer, int32_t expert, int32_t dst_rank) override {
    const auto& c = executor_.model().config;
    const FfnWeights src = executor_.expert_weights(layer, expert);
    const size_t matrix = static_cast<size_t>(src.intermediate) * static_cast<size_t>(c.hidden_size);
    auto staged = std::make_unique<CpuStagedExpert>();
    staged->expert = expert;
    staged->rank = dst_rank;
    staged->bytes = static_cast<int64_t>(3 * matrix * sizeof(float));
    // On CPU ranks every rank's memory is the host's: the new copy is what the rank will compute
    // with, and the old one keeps serving until the layer switches.
    staged->buffer = DeviceBuffer(backend_, 3 * matrix * sizeof(float));
    float* base = staged->buffer.as<float>();
    backend_.copy(base, src.gate, matrix * sizeof(float), *stream_);
    backend_.copy(base + matrix, src.up, matrix * sizeof(float), *stream_);
    backend_.copy(base + 2 * matrix, src.down, matrix * sizeof(float), *stream_);
    backend_.synchronize(*stream_);
    staged->weights = FfnWeights{base, base + matrix, base + 2 * matrix, src.intermediate};
    return staged;
  }

  int64_t commit_layer(int32_t layer, const std::vector<int32_t>& owner,
                       std::vector<std::unique_ptr<StagedExpert>> staged) override {
    const auto& c = executor_.model().config;
    std::vector<std::vector<int32_t>> owners(1, owner);
    auto placement = make_placement(owners, num_ranks(), c.num_experts);
    AURORA_CHECK_MSG(placement.ok(), placement.error().message);
    std::vector<FfnWeights> weights(static_cast<size_t>(c.num_experts));
    for (int32_t e = 0; e < c.num_experts; ++e) weights[static_cast<size_t>(e)] = executor_.expert_weights(layer, e);
    std::vector<CpuStagedExpert*> copies;
    for (auto& s : staged) {
      auto* cpu = dynamic_cast<CpuStagedExpert*>(s.get());
      AURORA_CHECK(cpu != nullptr && cpu->expert >= 0 && cpu->expert < c.num_experts);
      AURORA_CHECK_MSG(owner[static_cast<size_t>(cpu->expert)] == cpu->rank,
                       "expert " << cpu->expert << " staged on rank " << cpu->rank << " but owned by "
                                 << owner[static_cast<size_t>(cpu->expert)]);
      weights[static_cast<size_t>(cpu->expert)] = cpu->weights;
      copies.push_back(cpu);
    }
    const int64_t moved = executor_.switch_layer(layer, std::move(placement->layers[0]), weights);
    // The layer now computes with the new copies; the ones they replace are freed here.
    auto& owned = owned_[static_cast<size_t>(layer)];
    for (size_t i = 0; i < staged.size(); ++i) {
      staged[i].release();
      owned[static_cast<size_t>(copies[i]->expert)].reset(copies[i]);
    }
    return moved;
  }

  void set_version(int64_t version) override { executor_.set_placement_version(version); }

  void set_order(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                 std::shared_ptr<const OrderTemplate> combine, bool use_window) override {
    executor_.set_order_templates(layer, std::move(dispatch), std::move(combine), use_window);
  }
  void measure_order_sources(bool on) override { executor_.measure_order_sources(on); }

 private:
  ModelExecutor& executor_;
  Backend& backend_;
  std::unique_ptr<Stream> stream_;                                    // the planner thread's copies
  std::vector<std::vector<std::unique_ptr<CpuStagedExpert>>> owned_;  // [layer][expert]: migrated copies in use
};

}  // namespace

std::unique_ptr<PlacementHost> make_executor_placement_host(ModelExecutor& executor, Backend& backend) {
  return std::make_unique<ExecutorPlacementHost>(executor, backend);
}

}  // namespace aurora::runtime
