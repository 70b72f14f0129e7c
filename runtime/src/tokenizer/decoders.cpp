// Decoders (HF `tokenizers::decoders`): ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
// BPEDecoder and Sequence. Each works on the list of token strings, as decode_chain does.
#include "tokenizer/components.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

namespace {

using config::JsonValue;

// Maps stand-in characters back to bytes; a token with any other character is taken as its raw
// UTF-8 (so added tokens such as "<|im_end|>" or ones with spaces survive), then the whole byte
// string is repaired with from_utf8_lossy rules.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const auto& t : tokens) {
      token_bytes.clear();
      bool mapped = true;
      size_t i = 0;
      while (i < t.size()) {
        int b = unicode_to_byte(next_code_point(t, i));
        if (b < 0) {
          mapped = false;
          break;
        }
        token_bytes += static_cast<char>(b);
      }
      bytes += mapped ? token_bytes : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (t.find(replacement_) == std::string::npos) continue;
      std::string out;
      size_t from = 0;
      for (size_t at = t.find(replacement_); at != std::string::npos; at = t.find(replacement_, from)) {
        out.append(t, from, at - from);
        if (!(i == 0 && strip_first_)) out += ' ';
        from = at + replacement_.size();
      }
      out.append(t, from, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;  // prepend_scheme != never: the first token drops its replacement chars
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::optional<Regex> regex, std::string literal, std::string content)
      : regex_(std::move(regex)), literal_(std::move(literal)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<Span> spans;
    for (auto& t : tokens) {
      if (!regex_) {
        size_t at = t.find(literal_);
        if (at == std::string::npos) continue;
        std::string out;
        size_t from = 0;
        for (; at != std::string::npos; at = t.find(literal_, from)) {
          out.append(t, from, at - from);
          out += content_;
          from = at + literal_.size();
        }
        out.append(t, from, std::string::npos);
        t.swap(out);
        continue;
      }
      regex_->find_matches(t, spans);
      std::string out;
      for (const auto& s : spans) {
        if (s.is_match) {
          out += content_;
        } else {
          out.append(t, s.begin, s.end - s.begin);
        }
      }
      t.swap(out);
    }
  }

 private:
  std::optional<Regex> regex_;
  std::string literal_;
  std::string content_;
};

// Runs of <0xNN> tokens become their bytes when those form valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back(kReplacementChar);
      }
      pending.clear();
    };
    for (auto& t : tokens) {
      int byte = parse_byte_token(t);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens = std::move(out);
  }

  static int parse_byte_token(std::string_view t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int v = 0;
    for (size_t k = 3; k < 5; ++k) {
      const char c = t[k];
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else {
        return -1;
      }
      v = v * 16 + d;
    }
    return v;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      size_t b = 0;
      for (size_t k = 0; k < start_ && b < t.size(); ++k) {
        size_t next = b;
        if (next_code_point(t, next) != content_) break;
        b = next;
      }
      size_t e = t.size();
      for (size_t k = 0; k < stop_ && e > b; ++k) {
        size_t prev;
        if (prev_code_point(t, e, prev) != content_) break;
        e = prev;
      }
      t = t.substr(b, e - b);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (suffix_.empty()) return;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string& t = tokens[i];
      std::string out;
      size_t from = 0;
      for (size_t at = t.find(suffix_); at != std::string::npos; at = t.find(suffix_, from)) {
        out.append(t, from, at - from);
        out += replacement;
        from = at + suffix_.size();
      }
      out.append(t, from, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

char32_t single_code_point(const JsonValue& json) {
  std::string s = json.as_string();
  size_t i = 0;
  if (s.empty() || !is_valid_utf8(s)) json.fail("must be a single character, got '" + s + "'");
  char32_t cp = next_code_point(s, i);
  if (i != s.size()) json.fail("must be a single character, got '" + s + "'");
  return cp;
}

size_t count_field(const JsonValue& json, std::string_view key) {
  auto v = json.find(key);
  return v ? static_cast<size_t>(v->int_in(0, 1 << 20)) : 0;
}

}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> parse_decoder(const JsonValue& json) {
  const std::string type = json["type"].as_string();
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Metaspace") {
    std::string replacement;
    append_utf8(replacement, single_code_point(json["replacement"]));
    bool strip_first = true;
    if (auto scheme = json.find("prepend_scheme")) {
      const std::string s = scheme->as_string();
      if (s != "always" && s != "first" && s != "never")
        scheme->fail("must be one of always, first, never, got '" + s + "'");
      strip_first = s != "never";
    }
    if (auto legacy = json.find("add_prefix_space"); legacy && !legacy->as_bool()) strip_first = false;
    return std::make_unique<MetaspaceDecoder>(std::move(replacement), strip_first);
  }
  if (type == "Replace") {
    std::string literal;
    auto regex = parse_pattern(json["pattern"], &literal);
    return std::make_unique<ReplaceDecoder>(std::move(regex), std::move(literal), json["content"].as_string());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_code_point(json["content"]), count_field(json, "start"),
                                          count_field(json, "stop"));
  }
  if (type == "BPEDecoder") {
    auto suffix = json.find("suffix");
    return std::make_unique<BpeSuffixDecoder>(suffix ? suffix->as_string() : "</w>");
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& item : json["decoders"].items()) steps.push_back(parse_decoder(item));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  throw_invalid(json.path().empty() ? "type" : json.path() + ".type",
                "unsupported decoder '" + type +
                    "' (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence)");
}

}  // namespace aurora::runtime::tok
