// libFuzzer target: tokenizer.json parsing, then encode + decode + streaming decode of text.
// Input: tokenizer.json text, a NUL byte, then the text to encode (without a NUL byte the whole
// input is also encoded with the embedded tokenizer). Built only with AURORA_FUZZ=ON (the `fuzz`
// preset); seeds: tests/fixtures/tokenizers/*/tokenizer.json.
//   build/fuzz/runtime/fuzz_tokenizer_json -max_len=65536 tests/fixtures/tokenizers/*/tokenizer.json
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tokenizer/hf_tokenizer.hpp"

namespace {

void exercise(const aurora::runtime::Tokenizer& tok, std::string_view text) {
  const auto ids = tok.encode(text, true);
  auto decoded = tok.decode(ids, false);
  if (!decoded.ok()) __builtin_trap();  // ids produced by encode always decode
  aurora::runtime::IncrementalDecoder stream(tok, true);
  for (int32_t id : ids) stream.push(id);
  stream.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  if (nul == std::string_view::npos) {
    exercise(*aurora::runtime::make_embedded_tokenizer(), input);
  }
  auto pipeline = aurora::runtime::tok::parse_tokenizer_json(input.substr(0, nul), "fuzz.json");
  if (!pipeline.ok()) return 0;
  aurora::runtime::tok::HfTokenizer tok(std::move(pipeline).value(), {});
  exercise(tok, nul == std::string_view::npos ? std::string_view("Hello world 123 <s> 😀") : input.substr(nul + 1));
  return 0;
}
