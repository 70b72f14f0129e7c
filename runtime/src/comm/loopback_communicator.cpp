// LoopbackCommunicator: N ranks as threads of one process. Each collective publishes the rank's
// buffers, meets the others at an abortable barrier, and copies what is addressed to it; in
// all_to_all_v the copies follow the plan's phases, with a barrier between phases, so the order of
// transfers is exactly the planner's (the CPU stand-in for grouped ncclSend/ncclRecv per phase).
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "aurora/config/check.hpp"
#include "aurora/runtime/communicator.hpp"

namespace aurora::runtime {
namespace {

class AbortableBarrier {
 public:
  explicit AbortableBarrier(int32_t count) : count_(count) {}

  void arrive_and_wait() {
    std::unique_lock lock(mu_);
    if (aborted_) throw CommunicatorAborted("communicator aborted");
    const uint64_t generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation || aborted_; });
    if (generation_ == generation) throw CommunicatorAborted("communicator aborted");
  }

  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  const int32_t count_;
  int32_t arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
};

class LoopbackCommunicator final : public Communicator {
 public:
  explicit LoopbackCommunicator(int32_t n) : n_(n), barrier_(n), slots_(static_cast<size_t>(n)) {}

  int32_t num_ranks() const override { return n_; }
  std::string name() const override { return "loopback"; }

  void all_gather(int32_t rank, const void* send, size_t bytes, void* recv, Stream&) override {
    slot(rank).send = static_cast<const std::byte*>(send);
    barrier_.arrive_and_wait();
    for (int32_t r = 0; r < n_; ++r) {
      std::memcpy(static_cast<std::byte*>(recv) + static_cast<size_t>(r) * bytes, slot(r).send, bytes);
    }
    barrier_.arrive_and_wait();  // nobody may reuse its send buffer before everyone copied
  }

  void all_to_all_v(int32_t rank, const AllToAllBuffers& b, const ExchangePlan& plan, Stream&) override {
    auto& me = slot(rank);
    me.send = b.send;
    me.send_offsets = b.send_offsets;
    me.recv = b.recv;
    me.recv_offsets = b.recv_offsets;
    std::vector<int64_t>& progress = me.progress;  // bytes received so far from each source
    progress.assign(static_cast<size_t>(n_), 0);
    barrier_.arrive_and_wait();
    // Local part first: it never crosses a link.
    copy_from(rank, rank, b.recv_offsets[rank + 1] - b.recv_offsets[rank]);
    for (const auto& phase : plan.phases) {
      for (const auto& t : phase) {
        if (t.dst == rank) copy_from(t.src, rank, t.bytes);
      }
      barrier_.arrive_and_wait();
    }
    for (int32_t s = 0; s < n_; ++s) {
      const int64_t expected = b.recv_offsets[s + 1] - b.recv_offsets[s];
      AURORA_CHECK_MSG(progress[static_cast<size_t>(s)] == expected,
                       "rank " << rank << " received " << progress[static_cast<size_t>(s)] << " bytes from rank " << s
                               << ", expected " << expected << " (the plan does not cover the traffic)");
    }
    if (plan.phases.empty()) barrier_.arrive_and_wait();
  }

  void barrier(int32_t) override { barrier_.arrive_and_wait(); }
  void abort() override { barrier_.abort(); }

 private:
  struct Slot {
    const std::byte* send = nullptr;
    const int64_t* send_offsets = nullptr;
    std::byte* recv = nullptr;
    const int64_t* recv_offsets = nullptr;
    std::vector<int64_t> progress;
  };
  Slot& slot(int32_t rank) { return slots_[static_cast<size_t>(rank)]; }

  // Copies the next `bytes` of src's part for dst into dst's receive buffer.
  void copy_from(int32_t src, int32_t dst, int64_t bytes) {
    if (bytes <= 0) return;
    Slot& s = slot(src);
    Slot& d = slot(dst);
    int64_t& done = d.progress[static_cast<size_t>(src)];
    const int64_t send_part = s.send_offsets[dst + 1] - s.send_offsets[dst];
    const int64_t recv_part = d.recv_offsets[src + 1] - d.recv_offsets[src];
    AURORA_CHECK_MSG(send_part == recv_part, "rank " << src << " sends " << send_part << " bytes to rank " << dst
                                                     << " which expects " << recv_part);
    AURORA_CHECK_MSG(done + bytes <= recv_part,
                     "plan moves more than " << recv_part << " bytes " << src << "->" << dst);
    std::memcpy(d.recv + d.recv_offsets[src] + done, s.send + s.send_offsets[dst] + done, static_cast<size_t>(bytes));
    done += bytes;
  }

  const int32_t n_;
  AbortableBarrier barrier_;
  std::vector<Slot> slots_;
};

}  // namespace

std::unique_ptr<Communicator> make_loopback_communicator(int32_t num_ranks) {
  AURORA_CHECK(num_ranks >= 1);
  return std::make_unique<LoopbackCommunicator>(num_ranks);
}

}  // namespace aurora::runtime
