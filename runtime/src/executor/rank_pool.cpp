#include "executor/rank_pool.hpp"

#include "aurora/runtime/communicator.hpp"

namespace aurora::runtime {

RankPool::RankPool(int32_t num_ranks) : num_ranks_(num_ranks) {
  for (int32_t r = 1; r < num_ranks; ++r) threads_.emplace_back([this, r] { worker(r); });
}

RankPool::~RankPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void RankPool::record_failure(std::exception_ptr e, bool is_abort) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    if (is_abort) {
      if (!first_abort_) first_abort_ = e;
    } else if (!first_error_) {
      first_error_ = e;
    }
    first = !failed_;
    failed_ = true;
  }
  if (first && on_failure_ && *on_failure_) (*on_failure_)();
}

void RankPool::worker(int32_t rank) {
  uint64_t seen = 0;
  while (true) {
    const std::function<void(int32_t)>* fn = nullptr;
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
    }
    try {
      (*fn)(rank);
    } catch (const CommunicatorAborted&) {
      record_failure(std::current_exception(), true);
    } catch (...) {
      record_failure(std::current_exception(), false);
    }
    {
      std::lock_guard lock(mu_);
      if (--remaining_ == 0) done_cv_.notify_all();
    }
  }
}

void RankPool::run(const std::function<void(int32_t)>& fn, const std::function<void()>& on_failure) {
  {
    std::lock_guard lock(mu_);
    fn_ = &fn;
    on_failure_ = &on_failure;
    remaining_ = num_ranks_ - 1;
    failed_ = false;
    first_error_ = nullptr;
    first_abort_ = nullptr;
    ++generation_;
  }
  start_cv_.notify_all();
  try {
    fn(0);
  } catch (const CommunicatorAborted&) {
    record_failure(std::current_exception(), true);
  } catch (...) {
    record_failure(std::current_exception(), false);
  }
  std::exception_ptr error;
  {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return remaining_ == 0; });
    error = first_error_ ? first_error_ : first_abort_;
    fn_ = nullptr;
    on_failure_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace aurora::runtime
