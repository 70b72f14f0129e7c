#include "aurora/loadgen/text_kinds.hpp"

#include <array>
#include <cctype>

namespace aurora::loadgen {
namespace {

template <size_t N>
const char* pick(const std::array<const char*, N>& words, Rng& rng) {
  return words[static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(N) - 1))];
}

constexpr std::array<const char*, 24> kAdjectives = {
    "quiet",   "ancient", "bright",    "gentle", "distant",  "golden", "restless", "narrow",
    "silver",  "patient", "weathered", "hidden", "crowded",  "lonely", "curious",  "broad",
    "shallow", "tired",   "careful",   "warm",   "northern", "empty",  "sudden",   "green"};
constexpr std::array<const char*, 32> kNouns = {
    "river",    "village", "lighthouse", "garden",  "traveler", "market", "mountain", "library",
    "harbor",   "forest",  "teacher",    "window",  "letter",   "bridge", "orchard",  "festival",
    "sailor",   "storm",   "valley",     "kitchen", "painter",  "road",   "meadow",   "castle",
    "merchant", "evening", "island",     "winter",  "story",    "friend", "shadow",   "morning"};
constexpr std::array<const char*, 24> kVerbs = {
    "carried",     "remembered", "watched",     "followed",    "painted",    "crossed",
    "gathered",    "found",      "described",   "visited",     "welcomed",   "noticed",
    "protected",   "explored",   "imagined",    "shared",      "answered",   "wandered through",
    "listened to", "dreamed of", "wrote about", "returned to", "waited for", "sang about"};
constexpr std::array<const char*, 12> kAdverbs = {"slowly",     "quietly",  "often",        "gladly",
                                                  "carefully",  "suddenly", "rarely",       "softly",
                                                  "once again", "at dawn",  "every spring", "without a word"};
constexpr std::array<const char*, 10> kPrepositions = {"across", "beside", "beyond", "near",  "under",
                                                       "above",  "behind", "toward", "along", "past"};
constexpr std::array<const char*, 8> kConnectives = {"Later,",      "Meanwhile,", "In the end,", "Years ago,",
                                                     "That night,", "Even so,",   "Afterwards,", "At first,"};

constexpr std::array<const char*, 20> kIdentifiers = {
    "total", "count", "buffer", "index", "result", "offset", "weights", "items",  "values", "cache",
    "limit", "score", "queue",  "node",  "parent", "width",  "height",  "matrix", "scale",  "stride"};
constexpr std::array<const char*, 16> kFunctions = {"compute_sum",   "parse_header",   "merge_sorted", "find_max",
                                                    "update_cache",  "normalize_rows", "count_tokens", "split_batch",
                                                    "apply_mask",    "reduce_mean",    "build_index",  "flush_queue",
                                                    "resize_buffer", "check_bounds",   "hash_key",     "load_config"};

void append_sentence(std::string& out, Rng& rng) {
  if (!out.empty()) out += ' ';
  const int shape = static_cast<int>(rng.uniform_int(0, 3));
  std::string s;
  switch (shape) {
    case 0:
      s = std::string("The ") + pick(kAdjectives, rng) + " " + pick(kNouns, rng) + " " + pick(kVerbs, rng) + " the " +
          pick(kAdjectives, rng) + " " + pick(kNouns, rng) + " " + pick(kAdverbs, rng) + ".";
      break;
    case 1:
      s = std::string(pick(kConnectives, rng)) + " a " + pick(kNouns, rng) + " " + pick(kPrepositions, rng) + " the " +
          pick(kNouns, rng) + " " + pick(kVerbs, rng) + " an old " + pick(kNouns, rng) + ".";
      break;
    case 2:
      s = std::string("Nobody knew why the ") + pick(kNouns, rng) + " " + pick(kAdverbs, rng) + " " +
          pick(kVerbs, rng) + " the " + pick(kNouns, rng) + ", but everyone in the " + pick(kNouns, rng) + " was " +
          pick(kAdjectives, rng) + ".";
      break;
    default:
      s = std::string("She ") + pick(kVerbs, rng) + " the " + pick(kAdjectives, rng) + " " + pick(kNouns, rng) +
          " and the " + pick(kNouns, rng) + " " + pick(kPrepositions, rng) + " it.";
      break;
  }
  out += s;
}

void append_code(std::string& out, Rng& rng) {
  const std::string fn = pick(kFunctions, rng);
  const std::string a = pick(kIdentifiers, rng);
  std::string b = pick(kIdentifiers, rng);
  if (b == a) b += "_2";
  const std::string v = std::string(pick(kIdentifiers, rng)) + "_acc";
  const std::string k = std::to_string(rng.uniform_int(2, 64));
  if (rng.uniform_int(0, 1) == 0) {
    out += "def " + fn + "(" + a + ", " + b + "):\n";
    out += "    " + v + " = 0\n";
    out += "    for i in range(len(" + a + ")):\n";
    out += "        if " + a + "[i] > " + b + ":\n";
    out += "            " + v + " += " + a + "[i] * " + k + "\n";
    out += "        else:\n";
    out += "            " + v + " -= " + b + " // " + k + "\n";
    out += "    return " + v + "\n\n";
  } else {
    out += "int " + fn + "(const std::vector<int>& " + a + ", int " + b + ") {\n";
    out += "  int " + v + " = 0;\n";
    out += "  for (size_t i = 0; i < " + a + ".size(); ++i) {\n";
    out += "    " + v + " += (" + a + "[i] << " + k + ") ^ " + b + ";\n";
    out += "  }\n";
    out += "  return " + v + " % " + k + ";\n";
    out += "}\n\n";
  }
}

void append_digits(std::string& out, Rng& rng) {
  // Lines of digit groups: numbers only, separated by spaces, commas and newlines.
  const int64_t groups = rng.uniform_int(6, 10);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t len = rng.uniform_int(3, 8);
    for (int64_t d = 0; d < len; ++d) out += static_cast<char>('0' + rng.uniform_int(0, 9));
    out += (g + 1 == groups) ? "\n" : (rng.uniform_int(0, 3) == 0 ? ", " : " ");
  }
}

}  // namespace

const char* prompt_kind_name(PromptKind kind) {
  switch (kind) {
    case PromptKind::kProse: return "prose";
    case PromptKind::kCode: return "code";
    case PromptKind::kDigits: return "digits";
  }
  return "?";
}

std::optional<PromptKind> parse_prompt_kind(std::string_view name) {
  if (name == "prose") return PromptKind::kProse;
  if (name == "code") return PromptKind::kCode;
  if (name == "digits") return PromptKind::kDigits;
  return std::nullopt;
}

int64_t estimate_tokens(std::string_view text) {
  int64_t tokens = 0;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) {
      ++i;  // folded into the next token, like BPE's leading-space words
      // A run of newlines/indentation longer than one space is a token of its own.
      size_t j = i;
      while (j < n && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j - i >= 2) ++tokens;
      i = j;
    } else if (std::isalpha(c) || c >= 0x80) {
      size_t j = i;
      while (j < n &&
             (std::isalpha(static_cast<unsigned char>(text[j])) || static_cast<unsigned char>(text[j]) >= 0x80))
        ++j;
      tokens += static_cast<int64_t>((j - i + 5) / 6);
      i = j;
    } else if (std::isdigit(c)) {
      size_t j = i;
      while (j < n && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
      tokens += static_cast<int64_t>((j - i + 2) / 3);
      i = j;
    } else {
      ++tokens;
      ++i;
    }
  }
  return tokens;
}

std::string make_text(PromptKind kind, int64_t num_tokens, Rng& rng) {
  std::string out;
  if (num_tokens <= 0) return out;
  // Token estimates are additive across a split where whitespace ends and a word begins (no run
  // crosses it), so the text before `stable` is estimated once and only the tail is re-estimated.
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t'; };
  size_t stable = 0;
  int64_t stable_tokens = 0;
  auto tail_tokens = [&](size_t end) { return estimate_tokens(std::string_view(out).substr(stable, end - stable)); };
  while (stable_tokens + tail_tokens(out.size()) < num_tokens) {
    size_t k = out.size();
    while (k > stable && !(k < out.size() && !is_space(out[k]) && is_space(out[k - 1]))) --k;
    if (k > stable) {
      stable_tokens += tail_tokens(k);
      stable = k;
    }
    switch (kind) {
      case PromptKind::kProse: append_sentence(out, rng); break;
      case PromptKind::kCode: append_code(out, rng); break;
      case PromptKind::kDigits: append_digits(out, rng); break;
    }
  }
  // Trim whole words from the end while the estimate stays at or above the target.
  for (;;) {
    size_t cut = out.size();
    while (cut > stable && !is_space(out[cut - 1])) --cut;  // start of the last word
    while (cut > stable && is_space(out[cut - 1])) --cut;   // and the whitespace before it
    if (cut <= stable) break;
    if (stable_tokens + tail_tokens(cut) < num_tokens) break;
    out.resize(cut);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

}  // namespace aurora::loadgen
