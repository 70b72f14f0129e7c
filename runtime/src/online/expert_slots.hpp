// ExpertSlots: which expert each storage slot of one rank holds, per MoE layer, for expert
// migration on device ranks. A layer's experts live in a fixed array of slots (the device tensors
// [slots, 2I, H] and [slots, H, I]); a slot is free, reserved (a staged copy is being written or
// waits for its layer's commit: no step reads it) or in use (the expert the layer computes with).
//
// Life of a move of expert e to this rank: reserve(l, e) -> slot (the copy is written there while
// steps keep reading e's old slot on its old rank), then either commit(l, slot) at the layer's
// switch, or cancel(l, slot) if the move is abandoned (a staged copy that never commits is never
// read). On the rank e leaves, release(l, e) at the same switch frees its old slot.
//
// Thread safety: every member takes the object's mutex (the planner thread reserves while the
// engine thread commits and releases).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

class ExpertSlots {
 public:
  // held[l]: the experts stored in slots 0 .. held[l].size() - 1 of layer l (empty for dense
  // layers); slots[l] >= held[l].size(): the layer's slot count (the rest start free).
  ExpertSlots(int32_t rank, int32_t num_experts, const std::vector<std::vector<int32_t>>& held,
              const std::vector<int32_t>& slots);

  int32_t rank() const { return rank_; }
  int32_t num_slots(int32_t layer) const;
  int32_t free_slots(int32_t layer) const;
  // The slot expert `expert` is computed from on this rank, or -1 when the rank does not hold it.
  int32_t slot_of(int32_t layer, int32_t expert) const;
  // Per slot: the expert in use there, or -1 (free or reserved).
  std::vector<int32_t> in_use(int32_t layer) const;

  // A free slot for a copy of `expert`. kResourceExhausted (naming layer, rank and slot count) when
  // none is free; kInvalidArgument when the rank already holds or is receiving the expert.
  Result<int32_t> reserve(int32_t layer, int32_t expert);
  void cancel(int32_t layer, int32_t slot);     // a reservation that will never be committed
  void commit(int32_t layer, int32_t slot);     // the reserved slot's expert is in use from now on
  void release(int32_t layer, int32_t expert);  // the expert's slot is free from now on

 private:
  enum class State : uint8_t { kFree, kReserved, kInUse };
  struct Slot {
    State state = State::kFree;
    int32_t expert = -1;
  };
  Slot& at(int32_t layer, int32_t slot);
  int32_t rank_;
  int32_t num_experts_;
  mutable std::mutex mu_;
  std::vector<std::vector<Slot>> slots_;       // [layer][slot]
  std::vector<std::vector<int32_t>> slot_of_;  // [layer][expert]: in-use slot or -1
};

}  // namespace aurora::runtime
