#include "token_channel.hpp"

namespace aurora::server {

TokenChannel::TokenChannel(net::any_io_executor strand, size_t max_events, size_t max_pending_bytes)
    : strand_(strand), timer_(strand), max_events_(max_events), max_pending_bytes_(max_pending_bytes) {}

void TokenChannel::notify_locked(std::unique_lock<std::mutex>& lock) {
  if (!waiting_) return;
  waiting_ = false;
  lock.unlock();
  // The timer belongs to the strand: cancel it there. A late cancel only causes a spurious wake-up.
  net::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
}

bool TokenChannel::push_delta(uint32_t tag, std::string_view text, int32_t num_tokens,
                              const std::vector<runtime::GeneratedLogprobs>& logprobs) {
  size_t bytes = text.size();
  for (const auto& lp : logprobs) bytes += sizeof(runtime::TokenLogprob) * (1 + lp.top.size());
  std::unique_lock lock(mutex_);
  if (closed_) return false;
  if (pending_bytes_ + bytes > max_pending_bytes_) return false;  // a reader this slow is cancelled
  pending_bytes_ += bytes;
  if (queue_.size() >= max_events_) {
    for (auto it = queue_.rbegin(); it != queue_.rend(); ++it) {
      if (it->tag != tag || it->kind == StreamEvent::Kind::kMessage) continue;
      if (it->kind == StreamEvent::Kind::kDelta) {
        it->text.append(text);
        it->num_tokens += num_tokens;
        it->logprobs.insert(it->logprobs.end(), logprobs.begin(), logprobs.end());
        return true;  // the consumer is busy (the queue is full), so no wake-up is needed
      }
      break;
    }
  }
  StreamEvent e;
  e.kind = StreamEvent::Kind::kDelta;
  e.tag = tag;
  e.text.assign(text);
  e.num_tokens = num_tokens;
  e.logprobs = logprobs;
  queue_.push_back(std::move(e));
  notify_locked(lock);
  return true;
}

void TokenChannel::push_finish(uint32_t tag, const runtime::Completion& completion) {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  StreamEvent e;
  e.kind = StreamEvent::Kind::kFinish;
  e.tag = tag;
  e.completion = completion;
  queue_.push_back(std::move(e));
  notify_locked(lock);
}

void TokenChannel::push_message(std::string message) {
  std::unique_lock lock(mutex_);
  if (closed_) return;
  StreamEvent e;
  e.kind = StreamEvent::Kind::kMessage;
  e.text = std::move(message);
  queue_.push_back(std::move(e));
  // On the strand already: the consumer is not inside wait() right now, or it is and will see the
  // event when its timer is cancelled.
  if (waiting_) {
    waiting_ = false;
    timer_.cancel();
  }
}

awaitable<TokenChannel::WaitResult> TokenChannel::wait(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) co_return WaitResult::kClosed;
    if (!queue_.empty()) co_return WaitResult::kReady;
    waiting_ = true;
  }
  timer_.expires_after(timeout);
  auto [ec] = co_await timer_.async_wait(use_tuple);
  std::lock_guard lock(mutex_);
  waiting_ = false;
  if (closed_) co_return WaitResult::kClosed;
  if (!queue_.empty()) co_return WaitResult::kReady;
  co_return ec ? WaitResult::kReady : WaitResult::kTimeout;  // woken without events: let the caller re-check
}

bool TokenChannel::pop_all(std::vector<StreamEvent>& out) {
  out.clear();
  std::lock_guard lock(mutex_);
  if (queue_.empty()) return false;
  out.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  pending_bytes_ = 0;
  return true;
}

void TokenChannel::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  queue_.clear();
  pending_bytes_ = 0;
  waiting_ = false;
  timer_.cancel();
}

void TokenChannel::wake() {
  std::lock_guard lock(mutex_);
  waiting_ = false;
  timer_.cancel();
}

bool TokenChannel::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

}  // namespace aurora::server
