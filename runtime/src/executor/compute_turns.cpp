#include "executor/compute_turns.hpp"

#include "aurora/config/check.hpp"
#include "aurora/runtime/communicator.hpp"

namespace aurora::runtime {

ComputeTurns::ComputeTurns(int32_t num_models)
    : num_models_(num_models), active_(static_cast<size_t>(num_models), false) {
  AURORA_CHECK(num_models >= 1);
}

void ComputeTurns::begin_step(const std::vector<bool>& active) {
  AURORA_CHECK(static_cast<int32_t>(active.size()) == num_models_);
  std::lock_guard lock(mu_);
  active_ = active;
  holder_ = -1;
  for (int32_t m = 0; m < num_models_ && holder_ < 0; ++m) {
    if (active_[static_cast<size_t>(m)]) holder_ = m;
  }
  last_holder_ = -1;
  last_event_ = nullptr;
  aborted_ = false;
  turns_ = 0;
}

int32_t ComputeTurns::next_active_after(int32_t model) const {
  for (int32_t i = 1; i <= num_models_; ++i) {
    const int32_t m = (model + i) % num_models_;
    if (active_[static_cast<size_t>(m)]) return m;
  }
  return -1;
}

const void* ComputeTurns::acquire(int32_t model) {
  std::unique_lock lock(mu_);
  AURORA_CHECK_MSG(active_[static_cast<size_t>(model)], "model " << model << " is not part of this step");
  cv_.wait(lock, [&] { return holder_ == model || aborted_; });
  if (aborted_) throw CommunicatorAborted("compute turns aborted");
  ++turns_;
  return last_holder_ == model ? nullptr : last_event_;
}

void ComputeTurns::release(int32_t model, const void* event) {
  {
    std::lock_guard lock(mu_);
    AURORA_CHECK_MSG(holder_ == model,
                     "model " << model << " releases a turn it does not hold (holder " << holder_ << ")");
    last_holder_ = model;
    last_event_ = event;
    holder_ = next_active_after(model);
  }
  cv_.notify_all();
}

void ComputeTurns::leave(int32_t model, const void* event) {
  {
    std::lock_guard lock(mu_);
    if (!active_[static_cast<size_t>(model)]) return;
    if (holder_ == model) {
      last_holder_ = model;
      last_event_ = event;
    }
    active_[static_cast<size_t>(model)] = false;
    if (holder_ == model) holder_ = next_active_after(model);
  }
  cv_.notify_all();
}

void ComputeTurns::abort() {
  {
    std::lock_guard lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

int64_t ComputeTurns::turns_taken() const {
  std::lock_guard lock(mu_);
  return turns_;
}

}  // namespace aurora::runtime
