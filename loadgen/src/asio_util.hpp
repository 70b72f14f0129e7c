// Small Asio helpers for the load generator's single-threaded io_context: the as_tuple token,
// a broadcast Signal, an async semaphore and a task counter.
//
// Contract: everything here is used from one thread (the io_context's); none of it is
// thread-safe. Waiting operations are coroutines that never throw for cancellation.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace aurora::loadgen::detail {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Boost 1.81 keeps as_tuple in experimental.
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// A latch that wakes every waiter once notify() is called; reset() arms it again.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  void notify() {
    set_ = true;
    for (auto* t : waiters_) t->cancel();
  }
  void reset() { set_ = false; }
  bool is_set() const { return set_; }
  asio::awaitable<void> wait() {
    while (!set_) co_await wait_until(Clock::time_point::max());
  }
  // Returns true if notified, false when the deadline passed first.
  asio::awaitable<bool> wait_until(Clock::time_point deadline) {
    if (set_) co_return true;
    asio::steady_timer timer(ex_, deadline);
    waiters_.push_back(&timer);
    co_await timer.async_wait(use_tuple);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &timer));
    co_return set_;
  }

 private:
  asio::any_io_executor ex_;
  std::vector<asio::steady_timer*> waiters_;
  bool set_ = false;
};

// A counting semaphore for coroutines; permits pass to waiters in FIFO order.
class AsyncSemaphore {
 public:
  AsyncSemaphore(asio::any_io_executor ex, int64_t permits) : ex_(std::move(ex)), permits_(permits) {}

  asio::awaitable<void> acquire() {
    while (!co_await acquire_until(Clock::time_point::max())) {
    }
  }
  // True with a permit; false when the deadline passed or cancel_waiters() was called first.
  asio::awaitable<bool> acquire_until(Clock::time_point deadline) {
    if (permits_ > 0 && waiters_.empty()) {
      --permits_;
      co_return true;
    }
    auto waiter = std::make_shared<Waiter>(ex_, deadline);
    waiters_.push_back(waiter);
    co_await waiter->timer.async_wait(use_tuple);
    if (!waiter->granted) {
      auto it = std::find(waiters_.begin(), waiters_.end(), waiter);
      if (it != waiters_.end()) waiters_.erase(it);
    }
    co_return waiter->granted;
  }
  void release() {
    if (!waiters_.empty()) {
      auto w = waiters_.front();
      waiters_.pop_front();
      w->granted = true;
      w->timer.cancel();
      return;
    }
    ++permits_;
  }
  void cancel_waiters() {
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& w : waiters) w->timer.cancel();
  }

 private:
  struct Waiter {
    Waiter(asio::any_io_executor ex, Clock::time_point deadline) : timer(ex, deadline) {}
    asio::steady_timer timer;
    bool granted = false;
  };
  asio::any_io_executor ex_;
  int64_t permits_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
};

// Counts running tasks; wait_idle() returns when none are left (or at the deadline).
class TaskCounter {
 public:
  explicit TaskCounter(asio::any_io_executor ex) : idle_(ex) { idle_.notify(); }
  void add() {
    if (count_++ == 0) idle_.reset();
  }
  void done() {
    if (--count_ == 0) idle_.notify();
  }
  int64_t count() const { return count_; }
  asio::awaitable<void> wait_idle() { co_await idle_.wait(); }
  asio::awaitable<bool> wait_idle_until(Clock::time_point deadline) { co_return co_await idle_.wait_until(deadline); }

 private:
  Signal idle_;
  int64_t count_ = 0;
};

}  // namespace aurora::loadgen::detail
