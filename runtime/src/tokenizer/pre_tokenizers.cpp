// Pre-tokenizers (HF `tokenizers::pre_tokenizers`): ByteLevel, Split, Metaspace, Whitespace,
// WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit, BertPreTokenizer and Sequence.
#include <algorithm>

#include "tokenizer/components.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

namespace {

using config::JsonValue;

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Rust char::is_ascii_punctuation() || Unicode punctuation (P*).
constexpr std::string_view kPunctuationPattern = R"([\p{P}\x{21}-\x{2F}\x{3A}-\x{40}\x{5B}-\x{60}\x{7B}-\x{7E}])";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const JsonValue& json) {
  const std::string b = json.as_string();
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  json.fail("must be one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous, got '" + b + "'");
}

// NormalizedString::split: turns the (offsets, is_match) spans of a pattern into the kept pieces.
void apply_behavior(const std::vector<Span>& spans, Behavior behavior, std::vector<Span>& out) {
  out.clear();
  bool prev_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const auto& s : spans) out.push_back({s.begin, s.end, false});
      break;
    case Behavior::kRemoved:
      for (const auto& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      break;
    case Behavior::kContiguous:
      for (const auto& s : spans) {
        if (!out.empty() && s.is_match == prev_match) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        prev_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (!out.empty() && s.is_match && !prev_match) {
          out.back().end = s.end;
        } else {
          out.push_back({s.begin, s.end, false});
        }
        prev_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (!out.empty() && it->is_match && !prev_match) {
          out.back().begin = it->begin;
        } else {
          out.push_back({it->begin, it->end, false});
        }
        prev_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
}

// Splits every piece with `regex` and `behavior` (HF PreTokenizedString::split), dropping empty
// pieces. The first piece of a split keeps the parent's at_origin.
void split_pieces(std::vector<Piece>& pieces, const Regex& regex, Behavior behavior, bool invert) {
  thread_local std::vector<Span> spans;
  thread_local std::vector<Span> kept;
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) {
    regex.find_matches(p.text, spans);
    if (invert) {
      for (auto& s : spans) s.is_match = !s.is_match;
    }
    apply_behavior(spans, behavior, kept);
    if (kept.size() == 1 && kept[0].begin == 0 && kept[0].end == p.text.size()) {
      if (!p.text.empty()) out.push_back(std::move(p));
      continue;
    }
    for (const auto& k : kept) {
      if (k.end > k.begin) out.push_back({p.text.substr(k.begin, k.end - k.begin), p.at_origin && k.begin == 0});
    }
  }
  pieces = std::move(out);
}

class RegexSplit final : public PreTokenizer {
 public:
  RegexSplit(Regex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override { split_pieces(pieces, regex_, behavior_, invert_); }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(Regex::compile(kGpt2Pattern, "pre_tokenizer"));
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : pieces) {
        if (!p.text.empty() && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      }
    }
    if (regex_) split_pieces(pieces, *regex_, Behavior::kIsolated, false);
    const auto& table = byte_to_unicode();
    std::string mapped;
    for (auto& p : pieces) {
      mapped.clear();
      for (char c : p.text) mapped += table[static_cast<unsigned char>(c)];
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  Metaspace(std::string replacement, Prepend prepend, bool split, const std::string& field)
      : replacement_(std::move(replacement)),
        prepend_(prepend),
        split_(split),
        delimiter_(Regex::literal(replacement_, field)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      if (p.text.find(' ') != std::string::npos) {
        std::string out;
        out.reserve(p.text.size() + 16);
        for (char c : p.text) {
          if (c == ' ') {
            out += replacement_;
          } else {
            out += c;
          }
        }
        p.text.swap(out);
      }
      const bool needs_prefix = p.text.compare(0, replacement_.size(), replacement_) != 0;
      const bool prepend = prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_origin);
      if (needs_prefix && prepend && !p.text.empty()) p.text.insert(0, replacement_);
    }
    if (split_) split_pieces(pieces, delimiter_, Behavior::kMergedWithNext, false);
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
  Regex delimiter_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& s : steps_) s->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool flag(const JsonValue& json, std::string_view key, bool fallback) {
  auto v = json.find(key);
  return v ? v->as_bool() : fallback;
}

std::string single_char(const JsonValue& json) {
  std::string s = json.as_string();
  size_t i = 0;
  if (s.empty() || !is_valid_utf8(s) || (next_code_point(s, i), i != s.size())) {
    json.fail("must be a single character, got '" + s + "'");
  }
  return s;
}

std::unique_ptr<PreTokenizer> parse_metaspace(const JsonValue& json) {
  std::string replacement = single_char(json["replacement"]);
  Metaspace::Prepend prepend = Metaspace::Prepend::kAlways;
  if (auto scheme = json.find("prepend_scheme")) {
    const std::string s = scheme->as_string();
    if (s == "always") {
      prepend = Metaspace::Prepend::kAlways;
    } else if (s == "first") {
      prepend = Metaspace::Prepend::kFirst;
    } else if (s == "never") {
      prepend = Metaspace::Prepend::kNever;
    } else {
      scheme->fail("must be one of always, first, never, got '" + s + "'");
    }
  }
  if (auto legacy = json.find("add_prefix_space"); legacy && !legacy->as_bool()) {
    if (json.find("prepend_scheme") && prepend != Metaspace::Prepend::kNever) {
      legacy->fail("add_prefix_space=false contradicts prepend_scheme");
    }
    prepend = Metaspace::Prepend::kNever;
  }
  return std::make_unique<Metaspace>(std::move(replacement), prepend, flag(json, "split", true), json.path());
}

std::string type_field(const JsonValue& json) { return json.path().empty() ? "type" : json.path() + ".type"; }

}  // namespace

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const JsonValue& json) {
  const std::string type = json["type"].as_string();
  const std::string& path = json.path();
  if (type == "ByteLevel") {
    return make_byte_level_pre_tokenizer(flag(json, "add_prefix_space", true), flag(json, "use_regex", true));
  }
  if (type == "Split") {
    auto regex = parse_pattern(json["pattern"]);
    return std::make_unique<RegexSplit>(std::move(*regex), parse_behavior(json["behavior"]),
                                        flag(json, "invert", false));
  }
  if (type == "Metaspace") return parse_metaspace(json);
  if (type == "Whitespace") {
    return std::make_unique<RegexSplit>(Regex::compile(R"(\w+|[^\w\s]+)", path), Behavior::kRemoved, true);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<RegexSplit>(Regex::compile(R"(\s)", path), Behavior::kRemoved, false);
  }
  if (type == "Digits") {
    return std::make_unique<RegexSplit>(
        Regex::compile(R"(\p{N})", path),
        flag(json, "individual_digits", false) ? Behavior::kIsolated : Behavior::kContiguous, false);
  }
  if (type == "Punctuation") {
    Behavior behavior = Behavior::kIsolated;
    if (auto b = json.find("behavior")) behavior = parse_behavior(*b);
    return std::make_unique<RegexSplit>(Regex::compile(kPunctuationPattern, path), behavior, false);
  }
  if (type == "CharDelimiterSplit") {
    return std::make_unique<RegexSplit>(Regex::literal(single_char(json["delimiter"]), path), Behavior::kRemoved,
                                        false);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::make_unique<RegexSplit>(Regex::compile(R"(\s)", path), Behavior::kRemoved, false));
    steps.push_back(
        std::make_unique<RegexSplit>(Regex::compile(kPunctuationPattern, path), Behavior::kIsolated, false));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& item : json["pretokenizers"].items()) steps.push_back(parse_pre_tokenizer(item));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  throw_invalid(type_field(json), "unsupported pre-tokenizer '" + type +
                                      "' (supported: ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, "
                                      "Digits, Punctuation, CharDelimiterSplit, BertPreTokenizer, Sequence)");
}

}  // namespace aurora::runtime::tok
