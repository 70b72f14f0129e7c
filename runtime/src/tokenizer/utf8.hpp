// UTF-8 helpers for the tokenizer: code point iteration, lossy repair (Rust's from_utf8_lossy
// rules), the GPT-2 byte <-> unicode table, and the Unicode character classes HF uses.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "aurora/config/utf8.hpp"

namespace aurora::runtime::tok {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence starting with lead byte b (1 for invalid leads).
inline size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8); advances i.
char32_t next_code_point(std::string_view s, size_t& i);
// Decodes the code point that ends at s[end) (s must be valid UTF-8); returns its start in `start`.
char32_t prev_code_point(std::string_view s, size_t end, size_t& start);
void append_utf8(std::string& out, char32_t cp);

using config::valid_utf8_prefix;  // the longest valid UTF-8 prefix of s
inline bool is_valid_utf8(std::string_view s) { return valid_utf8_prefix(s) == s.size(); }
// Replaces each maximal invalid subsequence by U+FFFD, exactly as Rust's String::from_utf8_lossy.
std::string utf8_lossy(std::string_view bytes);

// The GPT-2 byte-level alphabet: byte -> its printable stand-in character (as UTF-8), and back.
const std::array<std::string, 256>& byte_to_unicode();
// The byte a stand-in character encodes, or -1 when cp is not one.
int unicode_to_byte(char32_t cp);

// Character classes as Rust and the regex crate define them (ICU underneath).
bool is_whitespace(char32_t cp);  // White_Space (Rust char::is_whitespace, regex \s)
bool is_word_char(char32_t cp);   // regex \w: Alphabetic, M, Nd, Pc, Join_Control

}  // namespace aurora::runtime::tok
