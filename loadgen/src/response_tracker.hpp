// ResponseTracker: turns the events of one streamed response into its RequestRecord (timestamps,
// token counts and the outcome: success, failure with a reason, or the client's own cancel), the
// same way for SSE and WebSocket. The first outcome wins; later ones are ignored.
#pragma once

#include <optional>
#include <string>

#include "aurora/loadgen/metrics.hpp"
#include "aurora/loadgen/openai_wire.hpp"
#include "aurora/loadgen/text_kinds.hpp"

namespace aurora::loadgen::detail {

class ResponseTracker {
 public:
  ResponseTracker(RequestRecord& record, TokenSource fallback, bool keep_text)
      : r_(record), fallback_(fallback), keep_text_(keep_text) {}

  bool finished() const { return finished_; }

  // A chunk received at t (seconds since t0). Returns false if it ended the request (error event).
  bool on_chunk(const StreamChunk& chunk, double t) {
    if (finished_) return false;
    if (chunk.error) {
      fail("stream_error", describe(*chunk.error), t);
      return false;
    }
    if (chunk.content_bytes > 0) {
      r_.chunk_s.push_back(t);
      if (keep_text_ || fallback_ == TokenSource::kEstimate) text_ += chunk.text;
    }
    if (chunk.completion_tokens) completion_tokens_ = chunk.completion_tokens;
    if (chunk.prompt_tokens) prompt_tokens_ = chunk.prompt_tokens;
    if (chunk.finish_reason) r_.finish_reason = *chunk.finish_reason;
    return true;
  }
  void on_usage(std::optional<int64_t> prompt, std::optional<int64_t> completion) {
    if (prompt) prompt_tokens_ = prompt;
    if (completion) completion_tokens_ = completion;
  }

  // The response ended normally at t.
  void succeed(double t) {
    if (finished_) return;
    if (r_.chunk_s.empty()) {
      fail("no_content", "the stream ended without generated text", t);
      return;
    }
    finished_ = true;
    r_.success = true;
    r_.end_s = t;
    count_tokens();
    if (keep_text_) r_.generated_text = std::move(text_);
  }

  // The client cancelled the request at t (--request-cancellation-rate): neither a success nor a
  // failure. The tokens received so far are counted the same way as for a success.
  void cancel(double t) {
    if (finished_) return;
    finished_ = true;
    r_.success = false;
    r_.cancelled = true;
    r_.end_s = t;
    count_tokens();
    if (keep_text_) r_.generated_text = std::move(text_);
  }

  void fail(const std::string& reason, const std::string& detail, double t) {
    if (finished_) return;
    finished_ = true;
    r_.success = false;
    r_.error_reason = reason;
    r_.error_detail = detail;
    r_.end_s = t;
    if (keep_text_) r_.generated_text = std::move(text_);
  }

  static std::string describe(const ServerError& e) {
    std::string out = e.type.empty() ? std::string("error") : e.type;
    if (!e.code.empty()) out += " (" + e.code + ")";
    if (!e.message.empty()) out += ": " + e.message;
    return out;
  }

 private:
  void count_tokens() {
    if (prompt_tokens_) {
      r_.input_tokens = *prompt_tokens_;
      r_.input_from_usage = true;
    }
    if (completion_tokens_) {
      r_.output_tokens = *completion_tokens_;
      r_.output_source = TokenSource::kUsage;
    } else if (fallback_ == TokenSource::kEstimate) {
      r_.output_tokens = r_.chunk_s.empty() ? 0 : std::max<int64_t>(estimate_tokens(text_), 1);
      r_.output_source = TokenSource::kEstimate;
    } else {
      r_.output_tokens = static_cast<int64_t>(r_.chunk_s.size());
      r_.output_source = TokenSource::kChunks;
    }
  }

  RequestRecord& r_;
  TokenSource fallback_;
  bool keep_text_;
  bool finished_ = false;
  std::string text_;
  std::optional<int64_t> prompt_tokens_;
  std::optional<int64_t> completion_tokens_;
};

}  // namespace aurora::loadgen::detail
