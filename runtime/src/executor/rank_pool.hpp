// RankPool: runs one function on N expert-parallel ranks at once, rank 0 on the calling thread
// (the engine thread) and ranks 1..N-1 on worker threads it owns, and waits for all of them.
//
// Contract: run() is called from one thread at a time. If a rank throws, on_failure() is called
// once (the executor aborts the communicator there, so that ranks blocked in a collective wake
// up), every rank is waited for, and the first real failure is rethrown from run().
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aurora::runtime {

class RankPool {
 public:
  explicit RankPool(int32_t num_ranks);
  ~RankPool();
  RankPool(const RankPool&) = delete;
  RankPool& operator=(const RankPool&) = delete;

  int32_t num_ranks() const { return num_ranks_; }
  void run(const std::function<void(int32_t rank)>& fn, const std::function<void()>& on_failure);

 private:
  void worker(int32_t rank);
  void record_failure(std::exception_ptr e, bool is_abort);

  const int32_t num_ranks_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int32_t)>* fn_ = nullptr;
  const std::function<void()>* on_failure_ = nullptr;
  uint64_t generation_ = 0;
  int32_t remaining_ = 0;
  bool stop_ = false;
  bool failed_ = false;
  std::exception_ptr first_error_;
  std::exception_ptr first_abort_;
};

}  // namespace aurora::runtime
