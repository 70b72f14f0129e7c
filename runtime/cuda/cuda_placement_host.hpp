// CudaPlacementHost: the online planner's PlacementHost (online/placement_host.hpp) for one model
// of an ExpertParallelGroup: experts move between GPUs while the model serves.
//
// Storage: every rank's weights have, per MoE layer, held experts + spare slots
// (EpGroupOptions::expert_spare_slots, `--expert-spare-slots`); an ExpertSlots per rank says which
// slot is free, receiving or in use.
// - stage() (planner thread): reserves a free slot on the destination rank and copies the
//   expert's gate_up and down slices into it from the slot its owner computes with
//   (cudaMemcpyPeerAsync on a side stream of the destination GPU, neither the compute nor the
//   NCCL stream), then waits for the copy (an event). Steps keep running on the old copy; the new
//   one is unreachable (no key maps to its slot) until commit. A staged copy destroyed without a
//   commit gives its slot back.
// - commit_layer() (engine thread, between steps): every rank switches the layer together: the
//   placement (owners, keys), the device key maps, the slot of every local key; then the slots of
//   the experts that left a rank are freed (later copies into them wait for the step that last
//   read them).
// - Per-rank timings come with every step's StepResult (ExpertParallelGroup::execute).
//
// Thread safety: stage() on one planner thread, concurrently with steps and the engine-thread
// members; the slot tables and the owners the planner reads are under a mutex.
#pragma once

#include <memory>

#include "online/placement_host.hpp"

namespace aurora::runtime::cuda {

class ExpertParallelGroup;

// The host of `model` of `group` (which must outlive it).
std::unique_ptr<PlacementHost> make_cuda_placement_host(std::shared_ptr<ExpertParallelGroup> group, int32_t model);
// The weight slot `rank` computes expert `expert` of `layer` from (-1: not held there); `host` must
// come from make_cuda_placement_host (tests: where a migrated copy went).
int32_t cuda_expert_slot(const PlacementHost& host, int32_t layer, int32_t expert, int32_t rank);

}  // namespace aurora::runtime::cuda
