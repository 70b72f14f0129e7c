// Communicator: the collectives that move tokens between expert-parallel ranks. One interface for
// the CPU's in-process ranks (here) and NCCL (later).
//
// Contract: every rank calls every collective, each from its own thread, in the same order (as
// with NCCL). all_to_all_v follows the given plan's phase order: the transfers of phase p start
// only after phase p-1 finished everywhere. Buffers must stay untouched until the call returns.
// abort() wakes every rank blocked in a collective with an exception (used when one rank fails
// mid-step, so that the others do not wait forever); the communicator is unusable afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "aurora/runtime/backend.hpp"
#include "aurora/runtime/exchange_plan.hpp"

namespace aurora::runtime {

struct AllToAllBuffers {
  const std::byte* send = nullptr;
  const int64_t* send_offsets = nullptr;  // [num_ranks + 1]: bytes for dst d are [off[d], off[d+1])
  std::byte* recv = nullptr;
  const int64_t* recv_offsets = nullptr;  // [num_ranks + 1]: bytes from src s land in [off[s], off[s+1])
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int32_t num_ranks() const = 0;
  virtual std::string name() const = 0;

  // recv gets every rank's `bytes` of `send`, in rank order (num_ranks * bytes).
  virtual void all_gather(int32_t rank, const void* send, size_t bytes, void* recv, Stream& stream) = 0;
  // Moves the parts of the send buffers to their destinations, phase by phase. `plan` must cover
  // the off-diagonal traffic implied by the offsets; the diagonal part is copied locally first.
  virtual void all_to_all_v(int32_t rank, const AllToAllBuffers& buffers, const ExchangePlan& plan, Stream& stream) = 0;
  virtual void barrier(int32_t rank) = 0;
  virtual void abort() = 0;
};

// N ranks in one process (threads); each buffer is host memory.
std::unique_ptr<Communicator> make_loopback_communicator(int32_t num_ranks);

// Thrown out of collectives after abort().
class CommunicatorAborted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace aurora::runtime
