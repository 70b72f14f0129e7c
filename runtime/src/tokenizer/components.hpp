// The stages of a Hugging Face tokenizer pipeline other than the model: normalizers,
// pre-tokenizers, decoders and post-processors, each parsed from its tokenizer.json object.
// Each reproduces the `tokenizers` (Rust) semantics of the same name; parse_* throw
// ErrorException naming the field path for malformed or unsupported objects.
// All stages are immutable after parsing and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aurora/config/json.hpp"
#include "tokenizer/regex.hpp"

namespace aurora::runtime::tok {

// A {"String": ...} / {"Regex": ...} pattern object (Replace, Split). With `literal` given, a
// non-empty String pattern is returned there (plain substring search) instead of as a Regex.
std::optional<Regex> parse_pattern(const config::JsonValue& json, std::string* literal = nullptr);

// --- Normalizers: rewrite the text of one piece (between added tokens). --------------------------
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};
std::unique_ptr<Normalizer> parse_normalizer(const config::JsonValue& json);

// --- Pre-tokenizers: split pieces into words (and may rewrite them, e.g. ByteLevel). -------------
struct Piece {
  std::string text;
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace prepend "first")
};
class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by the split and rewritten pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const config::JsonValue& json);
// ByteLevel with the given flags (the embedded tokenizer builds one without JSON).
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);

// --- Decoders: token strings -> text (Decoder::decode_chain in HF). -------------------------------
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> parse_decoder(const config::JsonValue& json);
std::unique_ptr<Decoder> make_byte_level_decoder();

// --- Post-processors: add the model's special tokens around an encoding (add_special). ----------
class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids) const = 0;
};
std::unique_ptr<PostProcessor> parse_post_processor(const config::JsonValue& json);

}  // namespace aurora::runtime::tok
