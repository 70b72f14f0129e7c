#include "tokenizer/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>

#include "aurora/config/error.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Per-thread match state: one ovector pair is enough (only the whole match is used), and a
// JIT stack larger than the 32 KiB default so that long inputs never fail for stack.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  MatchState() {
    if (context != nullptr && jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

constexpr std::string_view kOnigWord = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char d = p[++i];
      switch (d) {
        case 's': out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]"; break;
        case 'S': out += in_class ? "\\S" : "[^\\s\\x{85}]"; break;
        case 'w': out += in_class ? std::string(kOnigWord) : "[" + std::string(kOnigWord) + "]"; break;
        case 'W': out += in_class ? std::string("\\W") : "[^" + std::string(kOnigWord) + "]"; break;
        case 'h': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;  // Oniguruma: hex digit
        case 'H': out += in_class ? "\\H" : "[^0-9a-fA-F]"; break;
        default: out += '\\'; out += d;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A leading '^' and then a leading ']' are part of the class, not its end.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:alpha:]
      size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.data() + i, close + 2 - i);
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

namespace {

std::unique_ptr<Regex::Code> compile_pcre2(const std::string& pattern, const std::string& field,
                                           std::string_view shown) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                                   &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw_invalid(field, "invalid regex '" + std::string(shown) + "': " + reinterpret_cast<const char*>(message) +
                             " at offset " + std::to_string(error_offset));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when unavailable
  auto out = std::make_unique<Regex::Code>();
  out->code = code;
  return out;
}

}  // namespace

Regex Regex::compile(std::string_view pattern, const std::string& field) {
  if (!is_valid_utf8(pattern)) throw_invalid(field, "regex is not valid UTF-8");
  Regex r;
  r.source_ = std::string(pattern);
  r.code_ = compile_pcre2(onig_to_pcre2(pattern), field, pattern);
  return r;
}

Regex Regex::literal(std::string_view literal, const std::string& field) {
  if (!is_valid_utf8(literal)) throw_invalid(field, "pattern is not valid UTF-8");
  std::string escaped;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) escaped += '\\';
    escaped += c;
  }
  Regex r;
  r.source_ = std::string(literal);
  r.code_ = compile_pcre2(escaped, field, literal);
  return r;
}

Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

void Regex::find_matches(std::string_view text, std::vector<Span>& out) const {
  out.clear();
  if (text.empty()) {
    out.push_back({0, 0, false});
    return;
  }
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t prev = 0;
  size_t pos = 0;
  bool have_last_end = false;
  size_t last_end = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, state.data, state.context);
    if (rc < 0) break;  // no match (or a resource limit: the rest stays unmatched)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const size_t s = ov[0];
    const size_t e = ov[1];
    if (s == e) {
      // Empty matches right after a match are skipped, as Rust's onig iterator does.
      if (!(have_last_end && last_end == e)) {
        if (prev != s) out.push_back({prev, s, false});
        out.push_back({s, s, true});
        prev = s;
      }
      have_last_end = true;
      last_end = e;
      if (s >= text.size()) break;
      pos = s + utf8_len(static_cast<unsigned char>(text[s]));
      continue;
    }
    if (prev != s) out.push_back({prev, s, false});
    out.push_back({s, e, true});
    prev = e;
    pos = e;
    have_last_end = true;
    last_end = e;
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
}

}  // namespace aurora::runtime::tok
