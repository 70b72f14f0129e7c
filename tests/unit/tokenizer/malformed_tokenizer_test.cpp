// Malformed tokenizer files give an Error naming the file and the field path; nothing crashes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "aurora/runtime/tokenizer.hpp"
#include "test_support.hpp"

using aurora::ErrorCode;
using aurora::runtime::load_tokenizer;
using aurora::test::fixture;

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("aurora_tok_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

std::string read(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A valid minimal byte-level tokenizer.json with `model` and extra top-level members spliced in.
std::string tokenizer_json(const std::string& model, const std::string& extra = "") {
  return "{" + extra + (extra.empty() ? "" : ",") + "\"model\": " + model + "}";
}

const std::string kModel = R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]})";

void expect_error(const std::string& text, const std::string& field, const std::string& mention = "") {
  TempDir dir;
  const std::string file = dir.write("tokenizer.json", text);
  auto r = load_tokenizer(file);
  INFO("tokenizer.json: " << text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(r.error().message, Catch::StartsWith(file + ": "));
  CHECK(r.error().field == (field.empty() ? file : field));  // a syntax error names the file alone
  if (!mention.empty()) CHECK_THAT(r.error().message, Catch::Contains(mention));
}

}  // namespace

TEST_CASE("a minimal hand-written tokenizer.json loads", "[tokenizer][errors]") {
  TempDir dir;
  auto r = load_tokenizer(dir.write("tokenizer.json", tokenizer_json(kModel)));
  REQUIRE(r.ok());
  CHECK((*r)->encode("abba") == std::vector<int32_t>{2, 1, 0});
  CHECK(*(*r)->decode({2, 1, 0}) == "ab b a");  // no decoder: tokens joined with spaces, as HF does
}

TEST_CASE("malformed tokenizer.json files name the file and the field", "[tokenizer][errors]") {
  expect_error("{not json", "", "invalid JSON");
  expect_error("[1, 2]", "(root)");
  expect_error("{}", "model", "is required");
  expect_error(tokenizer_json(R"({"type": "BPE"})"), "model.vocab", "is required");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": [1]})"), "model.vocab", "object");
  expect_error(tokenizer_json(R"({"type": "WordPiece", "vocab": {"a": 0}})"), "model.type", "WordPiece");
  expect_error(tokenizer_json(R"({"type": "Unigram", "vocab": [["a", 0.0]]})"), "model.type", "Unigram");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": "zero"}})"), "model.vocab.a", "integer");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": -1}})"), "model.vocab.a");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "c"]]})"), "model.merges[0]",
               "'c' is not in model.vocab");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]})"), "model.merges[0]",
               "merged token 'aa'");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["ab"]})"),
               "model.merges[0]", "two tokens");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]})"), "model.merges[0]", "pair");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": [7]})"), "model.merges[0]");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "merges": "a b"})"), "model.merges", "array");
  expect_error(tokenizer_json(R"({"type": "BPE", "vocab": {"a": 0}, "dropout": 0.1})"), "model.dropout");
  expect_error(tokenizer_json(kModel, R"("added_tokens": [{"id": 5}])"), "added_tokens[0].content", "is required");
  expect_error(tokenizer_json(kModel, R"("added_tokens": [{"id": -5, "content": "x"}])"), "added_tokens[0].id");
  expect_error(tokenizer_json(kModel, R"("pre_tokenizer": {"type": "UnicodeScripts"})"), "pre_tokenizer.type",
               "UnicodeScripts");
  expect_error(tokenizer_json(kModel, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"},
                                          "behavior": "Isolated"})"),
               "pre_tokenizer.pattern.Regex", "invalid regex");
  expect_error(tokenizer_json(kModel, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"},
                                          "behavior": "Sideways"})"),
               "pre_tokenizer.behavior", "Sideways");
  expect_error(tokenizer_json(kModel, R"("pre_tokenizer": {"type": "Sequence", "pretokenizers":
                                          [{"type": "ByteLevel"}, {"type": "Nope"}]})"),
               "pre_tokenizer.pretokenizers[1].type", "Nope");
  expect_error(tokenizer_json(kModel, R"("normalizer": {"type": "BertNormalizer"})"), "normalizer.type");
  expect_error(tokenizer_json(kModel, R"("decoder": {"type": "CTC"})"), "decoder.type", "CTC");
  expect_error(tokenizer_json(kModel, R"("decoder": {"type": "Strip", "content": "ab", "start": 1})"),
               "decoder.content", "single character");
  expect_error(tokenizer_json(kModel, R"("post_processor": {"type": "TemplateProcessing", "single":
                                          [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]})"),
               "post_processor.single[0].SpecialToken.id", "<s>");
}

TEST_CASE("missing files and broken model-directory configs are clear errors", "[tokenizer][errors]") {
  auto missing = load_tokenizer("/nonexistent/dir/tokenizer.json");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/dir/tokenizer.json"));

  TempDir empty;
  auto no_json = load_tokenizer(empty.path.string());
  REQUIRE_FALSE(no_json.ok());
  CHECK(no_json.error().code == ErrorCode::kNotFound);
  CHECK_THAT(no_json.error().message, Catch::Contains("tokenizer.json"));

  const std::string good = read(fixture("qwen2/tokenizer.json"));
  {
    TempDir dir;
    dir.write("tokenizer.json", good);
    const std::string config = dir.write("tokenizer_config.json", R"({"eos_token": "<|nope|>"})");
    auto r = load_tokenizer(dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::StartsWith(config + ": eos_token") && Catch::Contains("<|nope|>"));
  }
  {
    TempDir dir;
    dir.write("tokenizer.json", good);
    const std::string config = dir.write("tokenizer_config.json", R"({"bos_token": 5})");
    auto r = load_tokenizer(dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::StartsWith(config + ": bos_token"));
  }
  {
    TempDir dir;
    dir.write("tokenizer.json", good);
    const std::string config = dir.write("tokenizer_config.json", "{\"chat_template\": ");
    auto r = load_tokenizer(dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains(config) && Catch::Contains("invalid JSON"));
  }
  {
    TempDir dir;
    dir.write("tokenizer.json", good);
    const std::string gen = dir.write("generation_config.json", R"({"eos_token_id": [1, "two"]})");
    auto r = load_tokenizer(dir.path.string());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::StartsWith(gen + ": eos_token_id[1]"));
  }
  {
    TempDir dir;  // generation_config.json adds EOS ids (int or list) to tokenizer_config's
    dir.write("tokenizer.json", good);
    dir.write("tokenizer_config.json", R"({"eos_token": {"content": "<|im_end|>", "special": true}})");
    dir.write("generation_config.json", R"({"eos_token_id": 1100})");
    auto r = load_tokenizer(dir.path.string());
    REQUIRE(r.ok());
    CHECK((*r)->eos_ids() == std::vector<int32_t>{1102, 1100});
  }
}

TEST_CASE("model directories read special tokens from their config files", "[tokenizer][config]") {
  auto qwen = load_tokenizer(fixture("qwen2"));
  REQUIRE(qwen.ok());
  CHECK((*qwen)->eos_ids() == std::vector<int32_t>{1102, 1100});       // <|im_end|>, then <|endoftext|>
  CHECK((*qwen)->encode("hi", true) == (*qwen)->encode("hi", false));  // add_bos_token false
  auto llama = load_tokenizer(fixture("llama2"));
  REQUIRE(llama.ok());
  CHECK((*llama)->bos_id() == 1);
  CHECK((*llama)->eos_ids() == std::vector<int32_t>{2});
  CHECK((*llama)->encode("hi", true).front() == 1);
  // A bare tokenizer.json: the usual spellings of declared special tokens.
  auto bare = load_tokenizer(fixture("qwen2/tokenizer.json"));
  REQUIRE(bare.ok());
  CHECK((*bare)->eos_ids() == std::vector<int32_t>{1100, 1102});
  CHECK_FALSE((*bare)->bos_id().has_value());
}

TEST_CASE("corrupted tokenizer.json never crashes the loader or the encoder", "[tokenizer][errors]") {
  const std::string good = read(fixture("gpt2/tokenizer.json"));
  REQUIRE(good.size() > 1000);
  std::mt19937 rng(3);
  TempDir dir;
  size_t loaded = 0;
  for (int round = 0; round < 150; ++round) {
    std::string text = good;
    if (round % 3 == 0) {
      text.resize(rng() % text.size());
    } else {
      for (int k = 0; k < 3; ++k) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    }
    auto r = load_tokenizer(dir.write("tokenizer.json", text));
    if (r.ok()) {
      ++loaded;
      std::string input;
      for (int k = 0; k < 64; ++k) input += static_cast<char>(rng() % 256);
      const auto ids = (*r)->encode(input, true);
      CHECK((*r)->decode(ids, false).ok());
    } else {
      CHECK_THAT(r.error().message, Catch::StartsWith(dir.path.string()));
    }
  }
  CHECK(loaded < 150);
}
