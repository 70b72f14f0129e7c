// UTF-8 validation (RFC 3629: no overlong forms, no surrogates), shared by the tokenizer and the
// protocol writers.
#pragma once

#include <cstddef>
#include <string_view>

namespace aurora::config {

// Length of the valid sequence at s[i], or 0 when invalid; `maximal` receives the length of the
// maximal subpart of a valid sequence that s[i..] starts with (at least 1), per Unicode 3.9 / the
// WHATWG decoder (what a lossy decoder replaces by one U+FFFD).
size_t utf8_sequence_at(std::string_view s, size_t i, size_t& maximal);
// Length of the longest valid UTF-8 prefix of s.
size_t valid_utf8_prefix(std::string_view s);

}  // namespace aurora::config
