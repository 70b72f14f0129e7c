// IncrementalDecoder: never half a character; pieces concatenate to the full decode.
#include <catch2/catch.hpp>

#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::runtime::IncrementalDecoder;
using aurora::runtime::load_tokenizer;
using aurora::runtime::make_embedded_tokenizer;
using aurora::test::fixture;

TEST_CASE("a multi-byte character split over byte tokens appears only when complete", "[tokenizer][stream]") {
  auto tok = make_embedded_tokenizer();
  IncrementalDecoder d(*tok);
  CHECK(d.push('h') == "h");
  CHECK(d.push(0xF0).empty());  // 😀 = F0 9F 98 80
  CHECK(d.push(0x9F).empty());
  CHECK(d.push(0x98).empty());
  CHECK(d.push(0x80) == "😀");
  CHECK(d.push(0xE4).empty());  // 中 = E4 B8 AD
  CHECK(d.push(0xB8).empty());
  CHECK(d.push(0xAD) == "中");
  CHECK(d.flush().empty());
}

TEST_CASE("special tokens are skipped or shown, and unknown ids contribute nothing", "[tokenizer][stream]") {
  auto tok = make_embedded_tokenizer();
  IncrementalDecoder skip(*tok, true);
  CHECK(skip.push(256).empty());
  CHECK(skip.push('a') == "a");
  CHECK(skip.push(0xC3).empty());
  CHECK(skip.push(259).empty());  // a special between the two bytes of é: skipped, bytes rejoin
  CHECK(skip.push(0xA9) == "é");
  CHECK(skip.push(123456).empty());
  IncrementalDecoder show(*tok, false);
  CHECK(show.push(258) == "<|im_start|>");
  CHECK(show.push('x') == "x");
}

TEST_CASE("invalid bytes become U+FFFD without stalling the stream", "[tokenizer][stream]") {
  auto tok = make_embedded_tokenizer();
  IncrementalDecoder d(*tok);
  CHECK(d.push(0xFF).empty());  // held back: text ending in U+FFFD may be an incomplete character
  CHECK(d.push('a') ==
        "\xEF\xBF\xBD"
        "a");
  CHECK(d.push(0xE4).empty());
  CHECK(d.flush() == "\xEF\xBF\xBD");  // a dangling lead byte at the end
  // After flush the decoder starts a new stream.
  CHECK(d.push('b') == "b");
  // A long run of invalid bytes is released after a few tokens instead of growing forever.
  IncrementalDecoder run(*tok);
  std::string out;
  for (int k = 0; k < 40; ++k) out += run.push(0xFF);
  CHECK(out.size() >= 30 * 3);
  out += run.flush();
  CHECK(out == *tok->decode(std::vector<int32_t>(40, 0xFF)));
}

TEST_CASE("byte-fallback <0xNN> sequences stream as whole characters (SentencePiece family)", "[tokenizer][stream]") {
  auto tok = load_tokenizer(fixture("llama2/tokenizer.json"));
  REQUIRE(tok.ok());
  const std::string text = "Hello 中文文本 🤖 and ÿ";
  const auto ids = (*tok)->encode(text);
  size_t byte_tokens = 0;
  for (int32_t id : ids) byte_tokens += (*tok)->id_to_token(id)->rfind("<0x", 0) == 0 ? 1 : 0;
  REQUIRE(byte_tokens >= 6);  // the CJK and the emoji fall back to bytes
  IncrementalDecoder d(**tok);
  std::string out;
  size_t empty_pushes = 0;
  for (int32_t id : ids) {
    std::string piece = d.push(id);
    CHECK(aurora::test::valid_utf8(piece));
    empty_pushes += piece.empty() ? 1 : 0;
    out += piece;
  }
  out += d.flush();
  CHECK(out == text);
  CHECK(empty_pushes >= byte_tokens / 2);  // held back while a character was incomplete
}

TEST_CASE("the first token's leading space is dropped once, as in a full decode (Metaspace)", "[tokenizer][stream]") {
  for (const char* variant : {"mistral", "spm_split", "llama2"}) {
    auto tok = load_tokenizer(fixture(std::string(variant) + "/tokenizer.json"));
    REQUIRE(tok.ok());
    const auto ids = (*tok)->encode("the experts route tokens");
    IncrementalDecoder d(**tok);
    std::string first = d.push(ids[0]);
    CHECK_FALSE(first.empty());
    CHECK(first[0] != ' ');
    std::string out = first;
    for (size_t i = 1; i < ids.size(); ++i) out += d.push(ids[i]);
    out += d.flush();
    CHECK(out == *(*tok)->decode(ids));
  }
}

TEST_CASE("a long stream decodes incrementally to the same text", "[tokenizer][stream]") {
  auto tok = load_tokenizer(fixture("qwen2/tokenizer.json"));
  REQUIRE(tok.ok());
  std::string text;
  for (int k = 0; k < 400; ++k)
    text += "Stream 第" + std::to_string(k) + "段 with émojis 🎉👨‍👩‍👧 and code {x[i] += 1;}\n";
  const auto ids = (*tok)->encode(text);
  REQUIRE(ids.size() > 10000);
  IncrementalDecoder d(**tok);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  out += d.flush();
  CHECK(out == text);
}
