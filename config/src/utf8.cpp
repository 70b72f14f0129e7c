#include "aurora/config/utf8.hpp"

#include <cstdint>

namespace aurora::config {

// Length of the valid sequence at s[i], or 0 when invalid; `maximal` receives the length of the
// maximal subpart of a valid sequence that s[i..] starts with (at least 1), per Unicode 3.9 /
// the WHATWG decoder, which is what from_utf8_lossy replaces by one U+FFFD.
size_t utf8_sequence_at(std::string_view s, size_t i, size_t& maximal) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  maximal = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80;
    const unsigned char h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    maximal = k + 1;
  }
  return need + 1;
}

size_t valid_utf8_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    size_t maximal;
    size_t n = utf8_sequence_at(s, i, maximal);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

}  // namespace aurora::config
