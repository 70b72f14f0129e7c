// Private: TokenChannel, the bounded, non-blocking hand-off from engine threads (TokenSink calls)
// to one session coroutine.
//
// Contract:
// - push_delta / push_finish are called from engine threads and never block. push_delta returns
//   false when the consumer is gone (close()) or the queued, unsent text exceeds max_pending_bytes;
//   the engine then cancels the request. Past max_events queued events, a delta is coalesced into
//   the previous delta of the same tag (clients see fewer, larger chunks; nothing is lost).
//   push_finish always succeeds, so every request's end reaches the session.
// - wait / pop_all / push_message / close run on the session's strand only. wait() resumes when
//   events arrive, when close() or wake() is called, or after the timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "asio.hpp"
#include "aurora/runtime/request.hpp"

namespace aurora::server {

struct StreamEvent {
  enum class Kind { kDelta, kFinish, kMessage };
  Kind kind = Kind::kDelta;
  uint32_t tag = 0;                                  // which sequence (kDelta, kFinish)
  std::string text;                                  // delta text, or a pre-formatted message (kMessage)
  int32_t num_tokens = 0;                            // tokens in this delta
  std::vector<runtime::GeneratedLogprobs> logprobs;  // one per token, when the request asked for them
  runtime::Completion completion;                    // kFinish
};

class TokenChannel : public std::enable_shared_from_this<TokenChannel> {
 public:
  enum class WaitResult { kReady, kTimeout, kClosed };

  TokenChannel(net::any_io_executor strand, size_t max_events, size_t max_pending_bytes);

  // Engine threads.
  // `logprobs` (one entry per token, when requested) count towards max_pending_bytes by their size.
  bool push_delta(uint32_t tag, std::string_view text, int32_t num_tokens,
                  const std::vector<runtime::GeneratedLogprobs>& logprobs = {});
  void push_finish(uint32_t tag, const runtime::Completion& completion);

  // Session strand.
  void push_message(std::string message);
  awaitable<WaitResult> wait(std::chrono::milliseconds timeout);
  // Moves every queued event into `out` (cleared first); returns false when none.
  bool pop_all(std::vector<StreamEvent>& out);
  void close();
  void wake();
  bool closed() const;

 private:
  void notify_locked(std::unique_lock<std::mutex>& lock);

  net::any_io_executor strand_;
  net::steady_timer timer_;  // strand only: the consumer sleeps on it
  const size_t max_events_;
  const size_t max_pending_bytes_;
  mutable std::mutex mutex_;
  std::deque<StreamEvent> queue_;
  size_t pending_bytes_ = 0;
  bool waiting_ = false;  // the consumer sleeps and must be woken by a post
  bool closed_ = false;
};

}  // namespace aurora::server
