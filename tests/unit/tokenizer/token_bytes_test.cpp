// Tokenizer::token_bytes (logprobs' `bytes`): each token's raw bytes, so that the tokens of a text
// concatenate back to its UTF-8 bytes even where a character is split over several tokens.
#include <catch2/catch.hpp>

#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::runtime::load_tokenizer;
using aurora::runtime::make_embedded_tokenizer;
using aurora::runtime::Tokenizer;
using aurora::test::fixture;

namespace {

std::string joined_bytes(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) {
    auto b = t.token_bytes(id);
    REQUIRE(b.has_value());
    out += *b;
  }
  return out;
}

const std::string kText = "Hello wörld, 中文 and 😀 emoji";

}  // namespace

TEST_CASE("embedded tokenizer: bytes are the byte tokens, specials their text", "[tokenizer][logprobs]") {
  auto tok = make_embedded_tokenizer();
  CHECK(tok->token_bytes('a') == std::string("a"));
  CHECK(tok->token_bytes(0xE2) == std::string("\xE2"));  // a lead byte alone, not U+FFFD
  CHECK(tok->token_bytes(259) == std::string("<|im_end|>"));
  CHECK(!tok->token_bytes(123456).has_value());
  CHECK(joined_bytes(*tok, tok->encode(kText)) == kText);
}

TEST_CASE("byte-level BPE fixtures: token bytes concatenate to the text", "[tokenizer][logprobs]") {
  for (const char* name : {"gpt2", "llama3", "qwen2"}) {
    INFO(name);
    auto tok = load_tokenizer(fixture(name));
    REQUIRE(tok.ok());
    const auto ids = (*tok)->encode(kText);
    CHECK(joined_bytes(**tok, ids) == *(*tok)->decode(ids));  // gpt2 adds a prefix space
    CHECK(joined_bytes(**tok, ids).find(kText) != std::string::npos);
    bool split_character = false;  // the fixture vocabularies are small: 😀 takes several tokens
    for (int32_t id : ids) split_character = split_character || !aurora::test::valid_utf8(*(*tok)->token_bytes(id));
    CHECK(split_character);
  }
}

TEST_CASE("SentencePiece fixtures: byte fallback gives raw bytes, word starts keep their space",
          "[tokenizer][logprobs]") {
  for (const char* name : {"llama2", "mistral"}) {
    INFO(name);
    auto tok = load_tokenizer(fixture(name));
    REQUIRE(tok.ok());
    const auto ids = (*tok)->encode(kText);
    const std::string joined = joined_bytes(**tok, ids);
    // The text reads as after other text: a word-start marker is a space, the first one included.
    CHECK((joined == kText || joined == " " + kText));
  }
}
