// tokenizer_bench: encode throughput (tokens/s, MB/s) on ~400 KB of mixed text (prose in several
// languages, code, digits, emoji, whitespace runs), cold (empty word cache) and warm, and
// streaming decode throughput through IncrementalDecoder. Single thread.
//   tokenizer_bench [--kb N] [tokenizer.json or model dir ...]
// Without paths it measures the fixture tokenizers (byte-level Qwen2-style, SentencePiece
// Llama-2-style) and the embedded byte tokenizer.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "aurora/runtime/tokenizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

const char* const kPieces[] = {
    "The quick brown fox jumps over the lazy dog, and the experts route each token. ",
    "Mixture-of-experts models batch requests continuously; prefill is chunked so decode is not starved. ",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Übermut, Straße. ",
    "Le cœur a ses raisons que la raison ne connaît point. Où est la bibliothèque ? ",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. ",
    "我能吞下玻璃而不伤身体。今天天气很好，我们去公园散步吧。",
    "私はガラスを食べられます。それは私を傷つけません。",
    "def route(x, experts):\n    scores = [e.score(x) for e in experts]\n    return max(range(len(scores)), "
    "key=scores.__getitem__)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "{\"id\": 12345, \"values\": [3.14159, 2.71828, -42, 1e-9], \"ok\": true}\n",
    "Order #A-19384 shipped 2024-11-28T13:28:00Z, total $1,234.56 (15% off). ",
    "Emoji 😀👍🏽👨‍👩‍👧‍👦🎉 time! ",
    "    indented    with    runs    of    spaces    \n\n\t\ttabs\n",
};

// The pieces above in random order, interleaved with numbers and made-up words (random
// syllables in Latin, Cyrillic and CJK script), so that the text holds tens of thousands of
// distinct words and the BPE merge loop, not only the word cache, is measured.
std::string mixed_text(size_t bytes) {
  static const char* const kSyllables[] = {"ka", "ro", "min", "tel", "quo", "sh", "ex", "ur", "bla", "ni",
                                           "ду", "ка", "ми",  "ло",  "字",  "语", "学", "ç",  "ñ",   "ü"};
  std::mt19937 rng(2024);
  std::string text;
  while (text.size() < bytes) {
    const unsigned r = rng() % 10;
    if (r < 4) {
      text += kPieces[rng() % (sizeof(kPieces) / sizeof(kPieces[0]))];
    } else if (r < 5) {
      text += std::to_string(rng() % 100000000);
      text += ' ';
    } else {
      const unsigned n = 2 + rng() % 4;
      for (unsigned k = 0; k < n; ++k) text += kSyllables[rng() % (sizeof(kSyllables) / sizeof(kSyllables[0]))];
      text += rng() % 8 == 0 ? ", " : " ";
    }
  }
  return text;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void measure(const char* name, const aurora::runtime::Tokenizer& tok, const std::vector<std::string>& docs,
             size_t total_bytes) {
  auto pass = [&](size_t& num_tokens) {
    num_tokens = 0;
    auto start = Clock::now();
    for (const auto& d : docs) num_tokens += tok.encode(d).size();
    return seconds_since(start);
  };
  size_t num_tokens = 0;
  const double cold_s = pass(num_tokens);  // the word cache starts empty
  double warm_s = 1e30;
  for (int k = 0; k < 3; ++k) warm_s = std::min(warm_s, pass(num_tokens));

  std::vector<int32_t> ids;
  for (const auto& d : docs) {
    auto part = tok.encode(d);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  auto start = Clock::now();
  aurora::runtime::IncrementalDecoder decoder(tok);
  size_t out_bytes = 0;
  for (int32_t id : ids) out_bytes += decoder.push(id).size();
  out_bytes += decoder.flush().size();
  const double stream_s = seconds_since(start);

  const double mb = static_cast<double>(total_bytes) / 1e6;
  std::printf("| %-22s | %9zu | %7.2f | %12.0f | %8.2f | %12.0f | %8.2f | %14.0f |\n", name, num_tokens,
              static_cast<double>(total_bytes) / static_cast<double>(num_tokens), num_tokens / cold_s, mb / cold_s,
              num_tokens / warm_s, mb / warm_s, static_cast<double>(ids.size()) / stream_s);
  if (out_bytes == 0) std::printf("  (streaming produced no text)\n");
}

}  // namespace

int main(int argc, char** argv) {
  size_t kb = 400;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--kb") == 0 && i + 1 < argc) {
      kb = static_cast<size_t>(std::stoul(argv[++i]));
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  const std::string text = mixed_text(kb * 1024);
  // Requests of ~2 KB, as prompts arrive.
  std::vector<std::string> docs;
  for (size_t at = 0; at < text.size();) {
    size_t end = std::min(text.size(), at + 2048);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    docs.push_back(text.substr(at, end - at));
    at = end;
  }
  std::printf("tokenizer_bench: %zu bytes of mixed text in %zu requests, single thread\n\n", text.size(), docs.size());
  std::printf("| %-22s | %9s | %7s | %12s | %8s | %12s | %8s | %14s |\n", "tokenizer", "tokens", "B/token",
              "cold tok/s", "cold MB/s", "warm tok/s", "warm MB/s", "stream tok/s");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(24, '-').c_str(), std::string(11, '-').c_str(),
              std::string(9, '-').c_str(), std::string(14, '-').c_str(), std::string(10, '-').c_str(),
              std::string(14, '-').c_str(), std::string(10, '-').c_str(), std::string(16, '-').c_str());
  if (paths.empty()) {
    paths = {std::string(AURORA_TOKENIZER_FIXTURES) + "/qwen2", std::string(AURORA_TOKENIZER_FIXTURES) + "/llama3",
             std::string(AURORA_TOKENIZER_FIXTURES) + "/llama2", std::string(AURORA_TOKENIZER_FIXTURES) + "/mistral"};
    measure("embedded (bytes)", *aurora::runtime::make_embedded_tokenizer(), docs, text.size());
  }
  for (const auto& p : paths) {
    auto tok = aurora::runtime::load_tokenizer(p);
    if (!tok) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", tok.error().message.c_str());
      return 2;
    }
    std::string name = p.substr(p.find_last_of('/', p.size() - 2) + 1);
    measure(name.c_str(), **tok, docs, text.size());
  }
  return 0;
}
