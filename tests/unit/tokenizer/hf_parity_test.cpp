// Parity with Hugging Face `tokenizers` 0.23: for every fixture tokenizer (trained with the HF
// library and configured like Qwen2, Llama-3, GPT-2, Llama-2, Mistral, ...), encode and decode
// ~100 varied strings and ~60 arbitrary id sequences exactly as HF did.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::config::JsonDocument;
using aurora::runtime::IncrementalDecoder;
using aurora::runtime::load_tokenizer;
using aurora::test::fixture;
using aurora::test::int_list;

namespace {

const char* const kVariants[] = {"qwen2", "llama3", "gpt2", "splits", "llama2", "mistral", "spm_split"};

std::string stream_decode(const aurora::runtime::Tokenizer& tok, const std::vector<int32_t>& ids, bool skip,
                          bool* all_valid) {
  IncrementalDecoder decoder(tok, skip);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = decoder.push(id);
    *all_valid = *all_valid && aurora::test::valid_utf8(piece);
    out += piece;
  }
  std::string rest = decoder.flush();
  *all_valid = *all_valid && aurora::test::valid_utf8(rest);
  return out + rest;
}

}  // namespace

TEST_CASE("encode and decode match Hugging Face tokenizers on every fixture variant", "[tokenizer][hf]") {
  for (const char* variant : kVariants) {
    DYNAMIC_SECTION(variant) {
      auto tok = load_tokenizer(fixture(std::string(variant) + "/tokenizer.json"));
      REQUIRE(tok.ok());
      auto doc = JsonDocument::parse_file(fixture(std::string(variant) + "/expected.json"));
      REQUIRE(doc.ok());
      const auto root = doc->root();
      CHECK((*tok)->vocab_size() == root["vocab_size"].as_int());
      size_t n = 0;
      for (const auto& c : root["cases"].items()) {
        const std::string text = c["text"].as_string();
        INFO("variant " << variant << ", text [" << text << "]");
        const auto ids = int_list(c["ids"]);
        CHECK((*tok)->encode(text, false) == ids);
        CHECK((*tok)->encode(text, true) == int_list(c["ids_special"]));
        auto decoded = (*tok)->decode(ids, false);
        REQUIRE(decoded.ok());
        CHECK(*decoded == c["decoded"].as_string());
        auto decoded_skip = (*tok)->decode(int_list(c["ids_special"]), true);
        REQUIRE(decoded_skip.ok());
        CHECK(*decoded_skip == c["decoded_skip"].as_string());
        ++n;
      }
      CHECK(n >= 90);
    }
  }
}

TEST_CASE("decoding arbitrary id sequences matches Hugging Face (byte pieces, specials)", "[tokenizer][hf]") {
  for (const char* variant : kVariants) {
    DYNAMIC_SECTION(variant) {
      auto tok = load_tokenizer(fixture(std::string(variant) + "/tokenizer.json"));
      REQUIRE(tok.ok());
      auto doc = JsonDocument::parse_file(fixture(std::string(variant) + "/expected.json"));
      REQUIRE(doc.ok());
      for (const auto& c : doc->root()["decode_cases"].items()) {
        const auto ids = int_list(c["ids"]);
        INFO("variant " << variant << ", ids " << c["ids"].raw());
        auto decoded = (*tok)->decode(ids, false);
        REQUIRE(decoded.ok());
        CHECK(*decoded == c["decoded"].as_string());
        auto skipped = (*tok)->decode(ids, true);
        REQUIRE(skipped.ok());
        CHECK(*skipped == c["decoded_skip"].as_string());
      }
    }
  }
}

TEST_CASE("streaming every fixture encoding reproduces the full decode, never half a character",
          "[tokenizer][stream]") {
  for (const char* variant : kVariants) {
    DYNAMIC_SECTION(variant) {
      auto tok = load_tokenizer(fixture(std::string(variant) + "/tokenizer.json"));
      REQUIRE(tok.ok());
      auto doc = JsonDocument::parse_file(fixture(std::string(variant) + "/expected.json"));
      REQUIRE(doc.ok());
      for (const auto& c : doc->root()["cases"].items()) {
        const auto ids = int_list(c["ids_special"]);
        INFO("variant " << variant << ", text [" << c["text"].as_string() << "]");
        for (bool skip : {false, true}) {
          bool valid = true;
          CHECK(stream_decode(**tok, ids, skip, &valid) == *(*tok)->decode(ids, skip));
          CHECK(valid);
        }
      }
    }
  }
}

TEST_CASE("one tokenizer encodes from many threads at once (shared word cache)", "[tokenizer][threads]") {
  for (const char* variant : {"qwen2", "llama2"}) {
    auto tok = load_tokenizer(fixture(std::string(variant) + "/tokenizer.json"));
    REQUIRE(tok.ok());
    auto doc = JsonDocument::parse_file(fixture(std::string(variant) + "/expected.json"));
    REQUIRE(doc.ok());
    std::vector<std::pair<std::string, std::vector<int32_t>>> cases;
    for (const auto& c : doc->root()["cases"].items()) cases.emplace_back(c["text"].as_string(), int_list(c["ids"]));
    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int round = 0; round < 5; ++round) {
          for (size_t i = 0; i < cases.size(); ++i) {
            const auto& [text, ids] = cases[(i + static_cast<size_t>(t) * 17) % cases.size()];
            if ((*tok)->encode(text) != ids) ++mismatches;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(mismatches.load() == 0);
  }
}
