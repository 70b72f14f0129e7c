// SseParser: an incremental Server-Sent Events parser (the WHATWG event-stream rules) for streamed
// LLM responses.
//
// Contract: feed() takes bytes split anywhere (an event may straddle reads; lines end in "\n",
// "\r\n" or a lone "\r", even when the "\r" and "\n" arrive in different reads) and appends each
// event completed by a blank line. Comment lines (": ping") are keep-alives: counted, never events.
// Several `data:` lines join with "\n"; one leading space after the colon is dropped. An event or
// line larger than max_event_bytes sets overflowed() and stops parsing (a protection, not an event).
// Not thread-safe: one parser per stream.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aurora::loadgen {

struct SseEvent {
  std::string event;  // the `event:` field; empty means "message"
  std::string data;
};

class SseParser {
 public:
  static constexpr size_t kDefaultMaxEventBytes = 16u << 20;
  explicit SseParser(size_t max_event_bytes = kDefaultMaxEventBytes) : max_event_bytes_(max_event_bytes) {}

  void feed(std::string_view bytes, std::vector<SseEvent>& out);
  // At end of stream: an event whose data lines arrived complete but without the closing blank
  // line. The standard drops it; servers that omit the last blank line exist, so we keep it.
  std::optional<SseEvent> finish();

  size_t num_comments() const { return num_comments_; }
  bool overflowed() const { return overflowed_; }

 private:
  void process_line(std::string_view line, std::vector<SseEvent>& out);

  size_t max_event_bytes_;
  std::string line_;      // the current, incomplete line
  bool skip_lf_ = false;  // the previous byte was "\r": a "\n" right after it ends nothing
  std::string data_;
  std::string event_;
  bool has_data_ = false;
  size_t num_comments_ = 0;
  bool overflowed_ = false;
};

}  // namespace aurora::loadgen
