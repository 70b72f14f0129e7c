// ComputeTurns: the host half of the colocated (staggered) timeline on one device. Models that
// share a GPU issue their compute segments strictly in turn (model 0, model 1, model 0, ...; the
// paper's "computation competition": one model computes while the other's all-to-all is on the
// wire). The device half is an event: a model records one at the end of each segment and hands its
// handle over with the turn; the next holder makes its compute stream wait for that event before
// its own segment. Segments here are the stretches between two exchanges of a MoE layer: [gate]
// (attention + router), [experts], [aggregation + next layer's gate] (docs/multi_gpu.md).
//
// Contract: begin_step() from the coordinating thread before the models' threads start; then each
// active model's thread alternates acquire()/release() and ends with leave(). A thread holds the
// turn only while it enqueues work: it must never block on a collective while holding it (the
// other GPUs' threads of its model may wait for this GPU's turn: that would deadlock). abort()
// wakes every waiter with CommunicatorAborted. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace aurora::runtime {

class ComputeTurns {
 public:
  explicit ComputeTurns(int32_t num_models);

  // Starts a step: `active[m]` says whether model m takes part; the first active model holds the
  // turn and there is no previous event.
  void begin_step(const std::vector<bool>& active);
  // Blocks until `model` holds the turn. Returns the handle its previous holder released with
  // (null at the start of a step or when the model held the turn last itself).
  const void* acquire(int32_t model);
  // Ends the holder's segment: `event` is the handle of the event recorded at its end. The turn
  // passes to the next active model (or stays, when the model is alone).
  void release(int32_t model, const void* event);
  // The model issues no more segments in this step; passes the turn on if it holds it.
  void leave(int32_t model, const void* event);
  void abort();

  int64_t turns_taken() const;  // acquire() calls that returned in this step (tests, statistics)

 private:
  int32_t next_active_after(int32_t model) const;  // mu_ held

  const int32_t num_models_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> active_;
  int32_t holder_ = -1;
  int32_t last_holder_ = -1;
  const void* last_event_ = nullptr;
  bool aborted_ = false;
  int64_t turns_ = 0;
};

}  // namespace aurora::runtime
