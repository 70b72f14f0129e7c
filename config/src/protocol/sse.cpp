#include "aurora/config/protocol/sse.hpp"

namespace aurora::protocol {

void SseParser::feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ * 2 > buffer_.size()) {  // compact: drop consumed bytes
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  buffer_.append(bytes);
}

bool SseParser::next_line(std::string_view& line) {
  if (skip_lf_ && pos_ < buffer_.size()) {
    if (buffer_[pos_] == '\n') ++pos_;
    skip_lf_ = false;
  }
  for (size_t i = pos_; i < buffer_.size(); ++i) {
    const char c = buffer_[i];
    if (c != '\n' && c != '\r') continue;
    line = std::string_view(buffer_).substr(pos_, i - pos_);
    pos_ = i + 1;
    if (c == '\r') {
      if (pos_ < buffer_.size()) {
        if (buffer_[pos_] == '\n') ++pos_;
      } else {
        skip_lf_ = true;
      }
    }
    return true;
  }
  return false;
}

std::optional<SseEvent> SseParser::next() {
  std::string_view line;
  while (next_line(line)) {
    if (line.empty()) {
      if (!has_data_) {
        current_ = {};
        continue;
      }
      SseEvent out = std::move(current_);
      current_ = {};
      has_data_ = false;
      return out;
    }
    if (line.front() == ':') {
      ++comments_;
      continue;
    }
    const size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (has_data_) current_.data += '\n';
      current_.data.append(value);
      has_data_ = true;
    } else if (field == "event") {
      current_.event = std::string(value);
    }
  }
  return std::nullopt;
}

}  // namespace aurora::protocol
