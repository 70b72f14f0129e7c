// Server-Sent Events framing as OpenAI-compatible servers use it: writing `data: <json>\n\n`
// events, and an incremental parser for clients (the load generator and the tests).
//
// The parser follows the WHATWG EventSource rules that matter here: lines end in LF, CRLF or CR;
// `data:` lines of one event are joined with LF; a line starting with ':' is a comment; a blank
// line dispatches the event. Not thread-safe: one parser per stream.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace aurora::protocol {

inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
inline constexpr std::string_view kSseKeepAlive = ": keep-alive\n\n";

// Appends one event carrying `data` (which must not contain a newline: compact JSON never does).
inline void append_sse_event(std::string& out, std::string_view data) {
  out += "data: ";
  out += data;
  out += "\n\n";
}

struct SseEvent {
  std::string event;  // the `event:` field ("" when absent)
  std::string data;
};

class SseParser {
 public:
  // Appends bytes received from the stream.
  void feed(std::string_view bytes);
  // The next complete event, if one has been received.
  std::optional<SseEvent> next();
  // Comment lines (keep-alives) seen so far.
  size_t comments() const { return comments_; }
  // Bytes received but not yet part of a complete line.
  size_t pending_bytes() const { return buffer_.size() - pos_; }

 private:
  bool next_line(std::string_view& line);

  std::string buffer_;
  size_t pos_ = 0;
  bool skip_lf_ = false;  // the previous line ended in CR: a following LF belongs to it
  SseEvent current_;
  bool has_data_ = false;
  size_t comments_ = 0;
};

}  // namespace aurora::protocol
