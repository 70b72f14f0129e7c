// Helpers shared by the tokenizer tests: fixture paths, JSON reading, UTF-8 checks.
#pragma once

#include <string>
#include <vector>

#include "aurora/config/json.hpp"

namespace aurora::test {

inline std::string fixture(const std::string& relative) {
  return std::string(AURORA_TOKENIZER_FIXTURES) + "/" + relative;
}

inline std::vector<int32_t> int_list(const config::JsonValue& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.items()) out.push_back(static_cast<int32_t>(x.as_int()));
  return out;
}

// Strict UTF-8 validity (no surrogates, no overlongs, nothing truncated).
inline bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      n = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      n = 2;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      n = 3;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace aurora::test
