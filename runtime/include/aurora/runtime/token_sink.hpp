// TokenSink: how the engine hands a request's output to whoever asked for it.
//
// Contract: the engine calls a sink from an engine thread, in order (on_delta* then exactly one
// on_finish), and never concurrently for the same request. Implementations must not block: they
// push into a bounded queue and return. on_delta returns false when the consumer is gone or its
// queue is full; the engine then cancels the request within the step, frees its KV blocks and
// calls on_finish with FinishReason::kCancelled. This is how a slow or vanished client becomes a
// cancellation, never a stall.
#pragma once

#include "aurora/runtime/request.hpp"

namespace aurora::runtime {

class TokenSink {
 public:
  virtual ~TokenSink() = default;
  [[nodiscard]] virtual bool on_delta(const TokenDelta& delta) = 0;
  virtual void on_finish(const Completion& completion) = 0;
};

}  // namespace aurora::runtime
