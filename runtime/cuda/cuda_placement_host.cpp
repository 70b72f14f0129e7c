#include "cuda_placement_host.hpp"

#include <cuda_runtime.h>

#include <mutex>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "cuda_runner.hpp"
#include "cuda_weights.hpp"
#include "executor/expert_placement.hpp"
#include "expert_parallel_group.hpp"
#include "online/expert_slots.hpp"

namespace aurora::runtime::cuda {
namespace {

class CudaStagedExpert final : public StagedExpert {
 public:
  ~CudaStagedExpert() override {
    if (slots != nullptr && slot >= 0) slots->cancel(layer, slot);  // never committed: the slot is free again
  }
  ExpertSlots* slots = nullptr;  // the destination rank's
  int32_t layer = 0;
  int32_t slot = -1;  // reserved on the destination; -1 once committed
};

class CudaPlacementHost final : public PlacementHost {
 public:
  CudaPlacementHost(std::shared_ptr<ExpertParallelGroup> group, int32_t model)
      : group_(std::move(group)), model_(model) {
    const int32_t n = group_->num_ranks();
    const auto& c = group_->runner(model_, 0).weights().config();
    const ExpertPlacement& pl = group_->placement(model_);
    for (const auto& lp : pl.layers) owners_.push_back(lp.owner);
    for (int32_t r = 0; r < n; ++r) {
      const CudaWeights& w = group_->runner(model_, r).weights();
      std::vector<std::vector<int32_t>> held(static_cast<size_t>(c.num_layers));
      std::vector<int32_t> slots(static_cast<size_t>(c.num_layers), 0);
      for (int32_t l = 0; l < c.num_layers; ++l) {
        if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
        held[static_cast<size_t>(l)] = w.held_experts(l);
        slots[static_cast<size_t>(l)] = w.num_slots(l);
      }
      slots_.push_back(std::make_unique<ExpertSlots>(r, c.num_experts, held, slots));
      const int dev = group_->device(r);
      AURORA_CUDA_CHECK(cudaSetDevice(dev));
      for (int32_t p = 0; p < n; ++p) {
        if (p == r) continue;
        // Direct peer copies where the GPUs allow them; cudaMemcpyPeerAsync works without (slower).
        int can = 0;
        if (cudaDeviceCanAccessPeer(&can, dev, group_->device(p)) != cudaSuccess || !can) {
          (void)cudaGetLastError();
          continue;
        }
        if (cudaDeviceEnablePeerAccess(group_->device(p), 0) != cudaSuccess) (void)cudaGetLastError();
      }
      cudaStream_t s = nullptr;
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      side_.push_back(s);
      cudaEvent_t done = nullptr, released = nullptr;
      AURORA_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
      AURORA_CUDA_CHECK(cudaEventCreateWithFlags(&released, cudaEventDisableTiming));
      AURORA_CUDA_CHECK(cudaEventRecord(released, s));
      done_.push_back(done);
      released_.push_back(released);
    }
  }

  ~CudaPlacementHost() override {
    for (size_t r = 0; r < side_.size(); ++r) {
      cudaSetDevice(group_->device(static_cast<int32_t>(r)));
      cudaStreamSynchronize(side_[r]);
      cudaEventDestroy(done_[r]);
      cudaEventDestroy(released_[r]);
      cudaStreamDestroy(side_[r]);
    }
  }

  int32_t num_ranks() const override { return group_->num_ranks(); }

  std::vector<std::vector<int32_t>> owners() const override {
    std::lock_guard lock(mu_);
    return owners_;
  }

  int64_t bytes_per_weight() const override { return 2; }  // bf16
  int64_t bytes_per_expert() const override { return group_->runner(model_, 0).weights().expert_bytes(); }

  std::unique_ptr<StagedExpert> stage(int32_t layer, int32_t expert, int32_t dst_rank) override {
    const int32_t n = num_ranks();
    AURORA_CHECK_MSG(dst_rank >= 0 && dst_rank < n, "rank " << dst_rank << " of " << n);
    int32_t src_rank = -1;
    {
      std::lock_guard lock(mu_);
      AURORA_CHECK(layer >= 0 && static_cast<size_t>(layer) < owners_.size());
      const auto& owner = owners_[static_cast<size_t>(layer)];
      AURORA_CHECK_MSG(expert >= 0 && static_cast<size_t>(expert) < owner.size(),
                       "layer " << layer << " has no expert " << expert);
      src_rank = owner[static_cast<size_t>(expert)];
    }
    AURORA_CHECK_MSG(src_rank != dst_rank,
                     "layer " << layer << " expert " << expert << " is already on rank " << dst_rank);
    const int32_t src_slot = slots_[static_cast<size_t>(src_rank)]->slot_of(layer, expert);
    AURORA_CHECK_MSG(src_slot >= 0, "rank " << src_rank << " does not hold expert " << expert << " of layer " << layer);
    auto reserved = slots_[static_cast<size_t>(dst_rank)]->reserve(layer, expert);
    if (!reserved) throw_error(reserved.error());
    auto staged = std::make_unique<CudaStagedExpert>();
    staged->expert = expert;
    staged->rank = dst_rank;
    staged->bytes = bytes_per_expert();
    staged->slots = slots_[static_cast<size_t>(dst_rank)].get();
    staged->layer = layer;
    staged->slot = *reserved;

    const CudaFfn& from = group_->runner(model_, src_rank).weights().layers[static_cast<size_t>(layer)].experts;
    const CudaFfn& to = group_->runner(model_, dst_rank).weights().layers[static_cast<size_t>(layer)].experts;
    const auto& c = group_->runner(model_, 0).weights().config();
    const int64_t gu = int64_t{2} * from.intermediate * c.hidden_size, dn = int64_t{c.hidden_size} * from.intermediate;
    const int src_dev = group_->device(src_rank), dst_dev = group_->device(dst_rank);
    cudaStream_t s = side_[static_cast<size_t>(dst_rank)];
    AURORA_CUDA_CHECK(cudaSetDevice(dst_dev));
    {
      // A slot freed by a commit may still be read by the step before it: copy after that step.
      std::lock_guard lock(mu_);
      AURORA_CUDA_CHECK(cudaStreamWaitEvent(s, released_[static_cast<size_t>(dst_rank)], 0));
    }
    AURORA_CUDA_CHECK(cudaMemcpyPeerAsync(to.gate_up + staged->slot * gu, dst_dev, from.gate_up + src_slot * gu,
                                          src_dev, static_cast<size_t>(gu) * sizeof(bf16), s));
    AURORA_CUDA_CHECK(cudaMemcpyPeerAsync(to.down + staged->slot * dn, dst_dev, from.down + src_slot * dn, src_dev,
                                          static_cast<size_t>(dn) * sizeof(bf16), s));
    AURORA_CUDA_CHECK(cudaEventRecord(done_[static_cast<size_t>(dst_rank)], s));
    AURORA_CUDA_CHECK(cudaEventSynchronize(done_[static_cast<size_t>(dst_rank)]));
    return staged;
  }

  int64_t commit_layer(int32_t layer, const std::vector<int32_t>& owner,
                       std::vector<std::unique_ptr<StagedExpert>> staged) override {
    const int32_t n = num_ranks();
    const ExpertPlacement& current = group_->placement(model_);
    const int32_t E = current.num_experts;
    AURORA_CHECK(layer >= 0 && static_cast<size_t>(layer) < current.layers.size());
    const std::vector<int32_t> old_owner = current.layers[static_cast<size_t>(layer)].owner;  // a copy: `current` goes
    AURORA_CHECK_MSG(owner.size() == old_owner.size() && !owner.empty(),
                     "layer " << layer << ": owners of another shape");
    // Every expert that changes rank must come with its staged copy on its new rank.
    std::vector<CudaStagedExpert*> copy_of(static_cast<size_t>(E), nullptr);
    for (auto& s : staged) {
      auto* cs = dynamic_cast<CudaStagedExpert*>(s.get());
      AURORA_CHECK(cs != nullptr && cs->layer == layer && cs->slot >= 0 && cs->expert >= 0 && cs->expert < E);
      AURORA_CHECK_MSG(owner[static_cast<size_t>(cs->expert)] == cs->rank,
                       "expert " << cs->expert << " staged on rank " << cs->rank << " but owned by "
                                 << owner[static_cast<size_t>(cs->expert)]);
      copy_of[static_cast<size_t>(cs->expert)] = cs;
    }
    int64_t moved = 0;
    for (int32_t e = 0; e < E; ++e) {
      if (owner[static_cast<size_t>(e)] == old_owner[static_cast<size_t>(e)]) continue;
      AURORA_CHECK_MSG(copy_of[static_cast<size_t>(e)] != nullptr,
                       "layer " << layer << ": expert " << e << " moves to rank " << owner[static_cast<size_t>(e)]
                                << " without a staged copy");
      ++moved;
    }
    std::vector<std::vector<int32_t>> owners;
    for (const auto& lp : current.layers) owners.push_back(lp.owner);
    owners[static_cast<size_t>(layer)] = owner;
    auto next = make_placement(owners, n, E);
    AURORA_CHECK_MSG(next.ok(), next.error().message);
    next->version = current.version;
    auto placement = std::make_shared<const ExpertPlacement>(std::move(*next));

    std::lock_guard lock(mu_);
    for (int32_t e = 0; e < E; ++e) {
      CudaStagedExpert* cs = copy_of[static_cast<size_t>(e)];
      if (cs == nullptr) continue;
      if (owner[static_cast<size_t>(e)] == old_owner[static_cast<size_t>(e)]) continue;  // a copy not needed: dropped
      cs->slots->commit(layer, cs->slot);
      cs->slot = -1;
    }
    // Every rank switches: keys, key maps, and the slot of each of its experts.
    for (int32_t r = 0; r < n; ++r) {
      const ExpertSlots& table = *slots_[static_cast<size_t>(r)];
      std::vector<std::vector<int32_t>> slot_of_key(placement->layers.size());
      for (size_t l = 0; l < placement->layers.size(); ++l) {
        const LayerPlacement& lp = placement->layers[l];
        if (lp.owner.empty()) continue;
        for (int32_t e : lp.rank_experts[static_cast<size_t>(r)]) {
          // The leaving experts of this layer still have their old slot in the table; the new
          // owners' slots are committed above.
          slot_of_key[l].push_back(table.slot_of(static_cast<int32_t>(l), e));
        }
      }
      group_->runner(model_, r).set_expert_placement(placement, slot_of_key);
    }
    group_->set_placement(model_, placement);
    // The old copies are unreachable now: free their slots. set_expert_placement waited for the
    // last step that read them; the event orders later copies into them after it anyway.
    for (int32_t e = 0; e < E; ++e) {
      const int32_t from = old_owner[static_cast<size_t>(e)];
      if (owner[static_cast<size_t>(e)] == from) continue;
      AURORA_CUDA_CHECK(cudaSetDevice(group_->device(from)));
      AURORA_CUDA_CHECK(cudaEventRecord(released_[static_cast<size_t>(from)], group_->runner(model_, from).stream()));
      slots_[static_cast<size_t>(from)]->release(layer, e);
    }
    owners_[static_cast<size_t>(layer)] = owner;
    return moved;
  }

  void set_version(int64_t version) override { version_ = version; }

  void set_order(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                 std::shared_ptr<const OrderTemplate> combine, bool use_window) override {
    for (int32_t r = 0; r < num_ranks(); ++r)
      group_->runner(model_, r).set_order_templates(layer, dispatch, combine, use_window);
  }
  void measure_order_sources(bool on) override {
    for (int32_t r = 0; r < num_ranks(); ++r) group_->runner(model_, r).measure_order_sources(on && r == 0);
  }

  Result<void> check_moves(const std::vector<std::vector<int32_t>>& owners) const override {
    std::lock_guard lock(mu_);
    const int32_t n = num_ranks();
    for (size_t l = 0; l < owners.size() && l < owners_.size(); ++l) {
      if (owners[l] == owners_[l] || owners_[l].empty()) continue;
      std::vector<int32_t> incoming(static_cast<size_t>(n), 0);
      for (size_t e = 0; e < owners[l].size(); ++e) {
        if (owners[l][e] != owners_[l][e]) ++incoming[static_cast<size_t>(owners[l][e])];
      }
      for (int32_t r = 0; r < n; ++r) {
        const int32_t free_slots = slots_[static_cast<size_t>(r)]->free_slots(static_cast<int32_t>(l));
        if (incoming[static_cast<size_t>(r)] > free_slots) {
          return Error::make(ErrorCode::kResourceExhausted,
                             "expert slots exhausted: layer " + std::to_string(l) + " would move " +
                                 std::to_string(incoming[static_cast<size_t>(r)]) + " experts to rank " +
                                 std::to_string(r) + ", which has " + std::to_string(free_slots) +
                                 " free slots (raise --expert-spare-slots)");
        }
      }
    }
    return {};
  }

  int32_t slot_of(int32_t layer, int32_t expert, int32_t rank) const {
    return slots_[static_cast<size_t>(rank)]->slot_of(layer, expert);
  }

 private:
  std::shared_ptr<ExpertParallelGroup> group_;
  int32_t model_;
  mutable std::mutex mu_;
  std::vector<std::vector<int32_t>> owners_;         // [layer][expert] in force (the planner reads them)
  std::vector<std::unique_ptr<ExpertSlots>> slots_;  // [rank]
  std::vector<cudaStream_t> side_;                   // [rank]: migration copies into that GPU
  std::vector<cudaEvent_t> done_, released_;         // [rank]
  int64_t version_ = 0;
};

}  // namespace

std::unique_ptr<PlacementHost> make_cuda_placement_host(std::shared_ptr<ExpertParallelGroup> group, int32_t model) {
  return std::make_unique<CudaPlacementHost>(std::move(group), model);
}

int32_t cuda_expert_slot(const PlacementHost& host, int32_t layer, int32_t expert, int32_t rank) {
  const auto* h = dynamic_cast<const CudaPlacementHost*>(&host);
  AURORA_CHECK_MSG(h != nullptr, "not a CUDA placement host");
  return h->slot_of(layer, expert, rank);
}

}  // namespace aurora::runtime::cuda
