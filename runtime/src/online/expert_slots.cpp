#include "online/expert_slots.hpp"

#include <string>

#include "aurora/config/check.hpp"

namespace aurora::runtime {

ExpertSlots::ExpertSlots(int32_t rank, int32_t num_experts, const std::vector<std::vector<int32_t>>& held,
                         const std::vector<int32_t>& slots)
    : rank_(rank), num_experts_(num_experts) {
  AURORA_CHECK(held.size() == slots.size());
  slots_.resize(held.size());
  slot_of_.resize(held.size());
  for (size_t l = 0; l < held.size(); ++l) {
    AURORA_CHECK_MSG(slots[l] >= static_cast<int32_t>(held[l].size()),
                     "layer " << l << ": " << slots[l] << " slots for " << held[l].size() << " experts");
    slots_[l].resize(static_cast<size_t>(slots[l]));
    if (slots[l] > 0) slot_of_[l].assign(static_cast<size_t>(num_experts), -1);
    for (size_t j = 0; j < held[l].size(); ++j) {
      const int32_t e = held[l][j];
      AURORA_CHECK(e >= 0 && e < num_experts && slot_of_[l][static_cast<size_t>(e)] < 0);
      slots_[l][j] = Slot{State::kInUse, e};
      slot_of_[l][static_cast<size_t>(e)] = static_cast<int32_t>(j);
    }
  }
}

ExpertSlots::Slot& ExpertSlots::at(int32_t layer, int32_t slot) {
  AURORA_CHECK(layer >= 0 && static_cast<size_t>(layer) < slots_.size());
  auto& s = slots_[static_cast<size_t>(layer)];
  AURORA_CHECK_MSG(slot >= 0 && static_cast<size_t>(slot) < s.size(), "layer " << layer << ": no slot " << slot);
  return s[static_cast<size_t>(slot)];
}

int32_t ExpertSlots::num_slots(int32_t layer) const {
  std::lock_guard lock(mu_);
  return static_cast<int32_t>(slots_.at(static_cast<size_t>(layer)).size());
}

int32_t ExpertSlots::free_slots(int32_t layer) const {
  std::lock_guard lock(mu_);
  int32_t n = 0;
  for (const Slot& s : slots_.at(static_cast<size_t>(layer))) n += s.state == State::kFree;
  return n;
}

int32_t ExpertSlots::slot_of(int32_t layer, int32_t expert) const {
  std::lock_guard lock(mu_);
  const auto& m = slot_of_.at(static_cast<size_t>(layer));
  return expert >= 0 && static_cast<size_t>(expert) < m.size() ? m[static_cast<size_t>(expert)] : -1;
}

std::vector<int32_t> ExpertSlots::in_use(int32_t layer) const {
  std::lock_guard lock(mu_);
  std::vector<int32_t> out;
  for (const Slot& s : slots_.at(static_cast<size_t>(layer))) out.push_back(s.state == State::kInUse ? s.expert : -1);
  return out;
}

Result<int32_t> ExpertSlots::reserve(int32_t layer, int32_t expert) {
  std::lock_guard lock(mu_);
  const std::string where = "layer " + std::to_string(layer) + ", rank " + std::to_string(rank_);
  if (layer < 0 || static_cast<size_t>(layer) >= slots_.size() || slots_[static_cast<size_t>(layer)].empty()) {
    return Error::invalid("expert_slots", where + ": not a MoE layer");
  }
  if (expert < 0 || expert >= num_experts_) {
    return Error::invalid("expert_slots", where + ": no expert " + std::to_string(expert));
  }
  auto& s = slots_[static_cast<size_t>(layer)];
  int32_t free_slot = -1;
  for (size_t j = 0; j < s.size(); ++j) {
    if (s[j].expert == expert && s[j].state != State::kFree) {
      return Error::invalid("expert_slots", where + " already " +
                                                (s[j].state == State::kInUse ? "holds" : "is receiving") + " expert " +
                                                std::to_string(expert));
    }
    if (free_slot < 0 && s[j].state == State::kFree) free_slot = static_cast<int32_t>(j);
  }
  if (free_slot < 0) {
    return Error::make(ErrorCode::kResourceExhausted,
                       "expert slots exhausted: " + where + " has all " + std::to_string(s.size()) +
                           " slots in use or reserved; a copy of expert " + std::to_string(expert) +
                           " needs one (raise --expert-spare-slots)");
  }
  s[static_cast<size_t>(free_slot)] = Slot{State::kReserved, expert};
  return free_slot;
}

void ExpertSlots::cancel(int32_t layer, int32_t slot) {
  std::lock_guard lock(mu_);
  Slot& s = at(layer, slot);
  AURORA_CHECK_MSG(s.state == State::kReserved, "layer " << layer << " slot " << slot << " is not reserved");
  s = Slot{};
}

void ExpertSlots::commit(int32_t layer, int32_t slot) {
  std::lock_guard lock(mu_);
  Slot& s = at(layer, slot);
  AURORA_CHECK_MSG(s.state == State::kReserved, "layer " << layer << " slot " << slot << " is not reserved");
  auto& of = slot_of_[static_cast<size_t>(layer)][static_cast<size_t>(s.expert)];
  AURORA_CHECK_MSG(of < 0, "layer " << layer << ": expert " << s.expert << " is already in use in slot " << of);
  s.state = State::kInUse;
  of = slot;
}

void ExpertSlots::release(int32_t layer, int32_t expert) {
  std::lock_guard lock(mu_);
  AURORA_CHECK(layer >= 0 && static_cast<size_t>(layer) < slot_of_.size());
  auto& of = slot_of_[static_cast<size_t>(layer)];
  AURORA_CHECK(expert >= 0 && static_cast<size_t>(expert) < of.size());
  const int32_t slot = of[static_cast<size_t>(expert)];
  AURORA_CHECK_MSG(slot >= 0, "layer " << layer << ": rank " << rank_ << " does not hold expert " << expert);
  at(layer, slot) = Slot{};
  of[static_cast<size_t>(expert)] = -1;
}

}  // namespace aurora::runtime
