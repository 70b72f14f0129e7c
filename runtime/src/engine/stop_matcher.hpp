// StopMatcher: finds stop strings in a stream of text deltas, across delta boundaries, and holds
// back any suffix that could still grow into a stop string, so that a client never sees a stop
// string, or a prefix of one that later matched.
//
// push(text) returns the text safe to emit now and, on a match, which stop string matched (the
// earliest match in the stream; text from the match on is dropped). flush() releases what is held
// back once the stream ends without a match. Not thread-safe (one per request).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aurora::runtime {

class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string emit;
    std::optional<size_t> matched;  // index into the stop strings
  };
  // `match` false (vLLM's min_tokens): no stop string may end in this text; it is still held
  // back as usual, so a stop string that begins here and ends in a later push is found.
  Result push(std::string_view text, bool match = true);
  std::string flush();
  bool empty() const { return stops_.empty(); }
  const std::string& stop(size_t i) const { return stops_[i]; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
};

}  // namespace aurora::runtime
