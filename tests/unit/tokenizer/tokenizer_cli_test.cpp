// `aurora tokenize`: ids on one line, --json with the decoded text, exit code 2 on bad input.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "test_support.hpp"

using aurora::config::JsonDocument;
using aurora::test::fixture;

namespace {

struct Run {
  int exit_code;
  std::string out;  // stdout and stderr
};

Run run(const std::string& args) {
  const std::string cmd = std::string(AURORA_CLI_BINARY) + " tokenize " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

TEST_CASE("aurora tokenize prints HF's ids and the decoded text", "[tokenizer][cli]") {
  auto expected = JsonDocument::parse_file(fixture("qwen2/expected.json"));
  REQUIRE(expected.ok());
  const auto c = expected->root()["cases"][9];  // "Hello world"
  REQUIRE(c["text"].as_string() == "Hello world");
  auto r = run("--tokenizer " + fixture("qwen2") + " --json 'Hello world'");
  REQUIRE(r.exit_code == 0);
  auto out = JsonDocument::parse(r.out);
  REQUIRE(out.ok());
  CHECK(aurora::test::int_list(out->root()["ids"]) == aurora::test::int_list(c["ids"]));
  CHECK(out->root()["decoded"].as_string() == "Hello world");

  auto plain = run("--tokenizer " + fixture("qwen2/tokenizer.json") + " 'Hello world'");
  REQUIRE(plain.exit_code == 0);
  std::string line;
  for (const auto& id : c["ids"].items()) {
    if (!line.empty()) line += ' ';
    line += std::to_string(id.as_int());
  }
  CHECK(plain.out == line + "\n");

  auto chat = run("--tokenizer " + fixture("llama2") + " --json --chat-template auto 'Hi'");
  REQUIRE(chat.exit_code == 0);
  auto chat_json = JsonDocument::parse(chat.out);
  REQUIRE(chat_json.ok());
  CHECK(chat_json->root()["prompt"].as_string() == "<s>[INST] Hi [/INST]");
  CHECK(chat_json->root()["ids"][0].as_int() == 1);
}

TEST_CASE("aurora tokenize rejects bad input with exit code 2 and a message naming it", "[tokenizer][cli]") {
  auto missing = run("--tokenizer /nonexistent/tok.json hi");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.out, Catch::Contains("/nonexistent/tok.json"));

  auto bad_template = run("--tokenizer " + fixture("qwen2") + " --chat-template nope hi");
  CHECK(bad_template.exit_code == 2);
  CHECK_THAT(bad_template.out, Catch::Contains("chat_template") && Catch::Contains("nope"));

  auto malformed = run("--tokenizer " + fixture("chat_templates.json") + " hi");
  CHECK(malformed.exit_code == 2);
  CHECK_THAT(malformed.out, Catch::Contains("chat_templates.json: model"));

  auto no_text = run("--tokenizer " + fixture("qwen2"));
  CHECK(no_text.exit_code == 2);
  CHECK_THAT(no_text.out, Catch::Contains("TEXT"));
}
