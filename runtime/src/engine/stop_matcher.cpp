#include "engine/stop_matcher.hpp"

#include <algorithm>

namespace aurora::runtime {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Result StopMatcher::push(std::string_view text, bool match) {
  Result r;
  if (stops_.empty()) {
    r.emit.assign(text);
    return r;
  }
  pending_.append(text);
  // The earliest complete match (ties: the stop listed first).
  size_t best_pos = std::string::npos;
  for (size_t i = 0; match && i < stops_.size(); ++i) {
    const size_t pos = pending_.find(stops_[i]);
    if (pos != std::string::npos && pos < best_pos) {
      best_pos = pos;
      r.matched = i;
    }
  }
  if (r.matched) {
    r.emit = pending_.substr(0, best_pos);
    pending_.clear();
    return r;
  }
  // Hold back the longest suffix of pending that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& stop : stops_) {
    const size_t max_len = std::min(stop.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) == std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  r.emit = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return r;
}

std::string StopMatcher::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace aurora::runtime
