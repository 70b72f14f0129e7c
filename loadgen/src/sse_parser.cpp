#include "aurora/loadgen/sse_parser.hpp"

#include <cstring>

namespace aurora::loadgen {

void SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  size_t i = 0;
  const size_t n = bytes.size();
  while (i < n && !overflowed_) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    // Find the next line end in this read; memchr-style scans keep long events cheap.
    size_t j = i;
    while (j < n && bytes[j] != '\n' && bytes[j] != '\r') ++j;
    if (j == n) {
      line_.append(bytes.substr(i));
      if (line_.size() + data_.size() > max_event_bytes_) overflowed_ = true;
      return;
    }
    if (bytes[j] == '\r') skip_lf_ = true;
    if (line_.empty()) {
      process_line(bytes.substr(i, j - i), out);
    } else {
      line_.append(bytes.substr(i, j - i));
      std::string line = std::move(line_);
      line_.clear();
      process_line(line, out);
    }
    i = j + 1;
  }
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {  // dispatch
    if (has_data_) {
      SseEvent ev;
      ev.event = std::move(event_);
      ev.data = std::move(data_);
      out.push_back(std::move(ev));
    }
    data_.clear();
    event_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') {
    ++num_comments_;
    return;
  }
  std::string_view field = line;
  std::string_view value;
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
    if (data_.size() > max_event_bytes_) overflowed_ = true;
  } else if (field == "event") {
    event_.assign(value);
  }
  // `id:` and `retry:` matter to reconnecting browsers, not to a load generator; other fields are
  // ignored as the standard says.
}

std::optional<SseEvent> SseParser::finish() {
  if (!line_.empty()) {
    std::vector<SseEvent> ignored;
    std::string line = std::move(line_);
    line_.clear();
    process_line(line, ignored);
  }
  if (!has_data_) return std::nullopt;
  SseEvent ev{std::move(event_), std::move(data_)};
  data_.clear();
  event_.clear();
  has_data_ = false;
  return ev;
}

}  // namespace aurora::loadgen
