// The embedded model's byte-level tokenizer: ids are bytes, specials above 255, ChatML.
#include <catch2/catch.hpp>

#include <random>

#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::runtime::IncrementalDecoder;
using aurora::runtime::make_embedded_tokenizer;

TEST_CASE("embedded tokenizer: bytes are ids, specials above 255", "[tokenizer][embedded]") {
  auto tok = make_embedded_tokenizer();
  REQUIRE(tok != nullptr);
  CHECK(tok == make_embedded_tokenizer());  // one shared instance
  CHECK(tok->vocab_size() == 261);
  CHECK(tok->bos_id() == 256);
  CHECK(tok->eos_ids() == std::vector<int32_t>{257, 259});
  CHECK(tok->encode("abc") == std::vector<int32_t>{97, 98, 99});
  CHECK(tok->encode("abc", true) == std::vector<int32_t>{256, 97, 98, 99});
  CHECK(tok->encode("").empty());
  CHECK(tok->encode("é") == std::vector<int32_t>{0xC3, 0xA9});
  CHECK(tok->encode(" \t\n") == std::vector<int32_t>{32, 9, 10});
  CHECK(tok->encode("<|im_start|>user\nhi<|im_end|>") ==
        std::vector<int32_t>{258, 'u', 's', 'e', 'r', '\n', 'h', 'i', 259});
  CHECK(tok->encode("<|im_start").size() == 10);  // a partial special is plain bytes
  for (int32_t id = 256; id <= 260; ++id) CHECK(tok->is_special(id));
  CHECK_FALSE(tok->is_special(65));
  CHECK(tok->token_to_id("<|pad|>") == 260);
  CHECK(tok->id_to_token(256) == "<|bos|>");
  CHECK(tok->id_to_token(261) == std::nullopt);
  CHECK(tok->chat_template_name() == "chatml");
  // Invalid UTF-8 input is repaired to U+FFFD before tokenizing.
  CHECK(tok->encode("a\xff") == std::vector<int32_t>{'a', 0xEF, 0xBF, 0xBD});
}

TEST_CASE("embedded tokenizer: decode round-trips and skips specials on request", "[tokenizer][embedded]") {
  auto tok = make_embedded_tokenizer();
  const std::string text = "Grüße, 世界! 👨‍👩‍👧 tabs\tand\nnewlines  ";
  CHECK(*tok->decode(tok->encode(text)) == text);
  CHECK(*tok->decode({256, 'h', 'i', 259}, true) == "hi");
  CHECK(*tok->decode({256, 'h', 'i', 259}, false) == "<|bos|>hi<|im_end|>");
  CHECK(*tok->decode({0xE4, 0xB8}, true) == "\xEF\xBF\xBD");  // an incomplete character: one U+FFFD
  auto bad = tok->decode({'a', 300});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().field == "ids[1]");
  CHECK_THAT(bad.error().message, Catch::Contains("300"));
}

TEST_CASE("embedded tokenizer: ChatML prompt with BOS", "[tokenizer][embedded]") {
  auto tok = make_embedded_tokenizer();
  auto prompt = tok->apply_chat_template({{"system", "Be brief."}, {"user", "hi"}});
  REQUIRE(prompt.ok());
  CHECK(*prompt ==
        "<|bos|><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  const auto ids = tok->encode(*prompt, false);
  CHECK(ids[0] == 256);
  CHECK(ids[1] == 258);
  CHECK(std::count(ids.begin(), ids.end(), 259) == 2);
}

TEST_CASE("embedded tokenizer: streams of random bytes decode incrementally as whole characters",
          "[tokenizer][embedded][stream]") {
  auto tok = make_embedded_tokenizer();
  std::mt19937 rng(42);
  const std::string samples[] = {"a", "é", "中", "😀", "👍🏽", "\n", " "};
  for (int round = 0; round < 50; ++round) {
    std::string text;
    for (int k = 0; k < 40; ++k) text += samples[rng() % 7];
    auto ids = tok->encode(text);
    if (round % 5 == 0) ids.insert(ids.begin() + static_cast<long>(rng() % ids.size()), 259);  // a special inside
    IncrementalDecoder decoder(*tok);
    std::string out;
    for (int32_t id : ids) {
      std::string piece = decoder.push(id);
      CHECK(aurora::test::valid_utf8(piece));
      out += piece;
    }
    out += decoder.flush();
    CHECK(out == *tok->decode(ids));
  }
}

TEST_CASE("the full-vocabulary byte tokenizer gives every id of a random-weights model text", "[tokenizer]") {
  auto tok = aurora::runtime::make_full_vocab_byte_tokenizer(32000);
  CHECK(tok->vocab_size() == 32000);
  // Encoding stays byte-level: the words above the specials are never produced.
  const std::vector<int32_t> hi{'h', 'i', ' ', 't', '3', '0', '0'};
  CHECK(tok->encode("hi t300") == hi);
  auto text = tok->decode({'a', 261, 31999, 300, 'b'});
  REQUIRE(text);
  CHECK(*text == "a t261 t31999 t300b");
  aurora::runtime::IncrementalDecoder d(*tok);
  CHECK(d.push(5000) == " t5000");
  CHECK(!tok->decode({32000}));  // past the vocabulary: an error naming the id
  // The embedded model's tokenizer is unchanged.
  CHECK(aurora::runtime::make_embedded_tokenizer()->vocab_size() == 261);
}
