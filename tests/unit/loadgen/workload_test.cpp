#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "aurora/loadgen/arrivals.hpp"
#include "aurora/loadgen/workload.hpp"

using namespace aurora::loadgen;

namespace {

int count_if_chars(const std::string& s, int (*pred)(int)) {
  int n = 0;
  for (char c : s) n += pred(static_cast<unsigned char>(c)) ? 1 : 0;
  return n;
}

std::string temp_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("aurora_loadgen_test_" + name);
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("the three prompt kinds are clearly distinct in content") {
  Rng rng(1);
  const std::string prose = make_text(PromptKind::kProse, 400, rng);
  const std::string code = make_text(PromptKind::kCode, 400, rng);
  const std::string digits = make_text(PromptKind::kDigits, 400, rng);
  // Prose: letters and punctuation, no digits, no code symbols.
  CHECK(count_if_chars(prose, isdigit) == 0);
  CHECK(prose.find_first_of("{}()=;") == std::string::npos);
  CHECK(count_if_chars(prose, isalpha) > static_cast<int>(prose.size()) / 2);
  // Code: functions, assignments, brackets, indentation.
  CHECK(code.find('(') != std::string::npos);
  CHECK(code.find(" = ") != std::string::npos);
  CHECK((code.find("def ") != std::string::npos || code.find("int ") != std::string::npos));
  CHECK(code.find("\n  ") != std::string::npos);
  // Digits: nothing but digits and separators.
  CHECK(count_if_chars(digits, isalpha) == 0);
  CHECK(count_if_chars(digits, isdigit) > static_cast<int>(digits.size()) / 2);
}

TEST_CASE("make_text reaches the requested length by the tokenizer-free estimate") {
  for (PromptKind kind : {PromptKind::kProse, PromptKind::kCode, PromptKind::kDigits}) {
    for (int64_t n : {1, 16, 128, 1024}) {
      Rng rng(static_cast<uint64_t>(n));
      const std::string text = make_text(kind, n, rng);
      const int64_t est = estimate_tokens(text);
      INFO(prompt_kind_name(kind) << " " << n);
      CHECK(est >= n);
      CHECK(est <= n + 10);
    }
  }
}

TEST_CASE("estimate_tokens approximates BPE counts") {
  CHECK(estimate_tokens("") == 0);
  CHECK(estimate_tokens("hello world") == 2);
  CHECK(estimate_tokens("internationalization") == 4);  // 20 letters: one token per 6
  CHECK(estimate_tokens("12345678") == 3);              // digits in groups of 3
  CHECK(estimate_tokens("f(x);") == 5);
  CHECK(estimate_tokens("a\n    b") == 3);  // indentation is a token
}

TEST_CASE("LengthRange draws within vLLM's range ratio") {
  Rng rng(3);
  LengthRange r{100, 0.5};
  int64_t lo = 1000, hi = 0;
  for (int i = 0; i < 2000; ++i) {
    const int64_t v = r.sample(rng);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  CHECK(lo == 50);
  CHECK(hi == 150);
  LengthRange fixed{64, 0};
  CHECK(fixed.sample(rng) == 64);
}

TEST_CASE("TrafficMix phases shift the kinds over time") {
  auto mix = TrafficMix::parse("prose=0.8,code=0.2@60s; prose=0.2, code=0.8@30s; digits");
  REQUIRE(mix.ok());
  REQUIRE(mix->phases().size() == 3);
  CHECK(mix->phase_index_at(0) == 0);
  CHECK(mix->phase_index_at(59.9) == 0);
  CHECK(mix->phase_index_at(60) == 1);
  CHECK(mix->phase_index_at(95) == 2);
  CHECK(mix->phase_index_at(1e9) == 2);
  Rng rng(9);
  int prose_early = 0, prose_late = 0, digits_last = 0;
  const int n = 5000;
  for (int i = 0; i < n; ++i) {
    prose_early += mix->pick(10, rng) == PromptKind::kProse ? 1 : 0;
    prose_late += mix->pick(70, rng) == PromptKind::kProse ? 1 : 0;
    digits_last += mix->pick(120, rng) == PromptKind::kDigits ? 1 : 0;
  }
  CHECK(prose_early / double(n) == Approx(0.8).margin(0.03));
  CHECK(prose_late / double(n) == Approx(0.2).margin(0.03));
  CHECK(digits_last == n);
  CHECK(mix->describe() == "prose=0.8,code=0.2@60s; prose=0.2,code=0.8@30s; digits=1");
}

TEST_CASE("TrafficMix errors name the phase and the value") {
  auto unknown = TrafficMix::parse("prose=1@10s; poetry=1");
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message, Catch::Contains("--traffic-mix[1]") && Catch::Contains("poetry"));
  auto open_middle = TrafficMix::parse("prose=1; code=1");
  REQUIRE_FALSE(open_middle.ok());
  CHECK_THAT(open_middle.error().message, Catch::Contains("--traffic-mix[0]"));
  CHECK_FALSE(TrafficMix::parse("prose=-1").ok());
  CHECK_FALSE(TrafficMix::parse("prose=0,code=0").ok());
  CHECK_FALSE(TrafficMix::parse("prose=1@-5s; code").ok());
}

TEST_CASE("the random workload is deterministic and follows the mix") {
  WorkloadConfig c;
  c.input = {64, 0.25};
  c.output = {32, 0.25};
  c.traffic_mix = "code=1@10s; digits=1";
  c.seed = 4;
  auto a = Workload::create(c);
  auto b = Workload::create(c);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (int i = 0; i < 20; ++i) {
    const double t = i;
    RequestSpec x = (*a)->next(t), y = (*b)->next(t);
    CHECK(x.messages.back().content == y.messages.back().content);
    CHECK(x.max_tokens == y.max_tokens);
    CHECK(x.kind == (t < 10 ? "code" : "digits"));
    CHECK(x.max_tokens >= 24);
    CHECK(x.max_tokens <= 40);
    CHECK(x.input_tokens_estimate >= 48);
    CHECK(x.input_tokens_estimate <= 84);
    REQUIRE(x.messages.size() == 1);
    CHECK(x.messages[0].role == "user");
  }
}

TEST_CASE("calibrated workloads size prompts in the server's tokens") {
  WorkloadConfig c;
  c.input = {300, 0};
  c.traffic_mix = "digits";
  c.tokens_per_estimate = {1.0, 1.0, 3.0};  // the server counts 3 tokens per estimated digit token
  auto w = Workload::create(c);
  REQUIRE(w.ok());
  const RequestSpec s = (*w)->next(0);
  CHECK(estimate_tokens(s.messages[0].content) == Approx(100).margin(5));
  CHECK(s.input_tokens_estimate == Approx(300).margin(15));
}

TEST_CASE("the synthetic chat dataset builds system + user conversations of each kind") {
  WorkloadConfig c;
  c.dataset_name = "synthetic-chat";
  c.input = {200, 0};
  c.output = {50, 0};
  c.seed = 2;
  auto w = Workload::create(c);
  REQUIRE(w.ok());
  std::map<std::string, int> kinds;
  for (int i = 0; i < 60; ++i) {
    RequestSpec s = (*w)->next(0);
    ++kinds[s.kind];
    REQUIRE(s.messages.size() >= 2);
    CHECK(s.messages.front().role == "system");
    CHECK(s.messages.back().role == "user");
    CHECK(s.input_tokens_estimate >= 190);
    CHECK(s.input_tokens_estimate <= 215);
    CHECK(s.max_tokens == 50);
  }
  CHECK(kinds.size() == 3);
}

TEST_CASE("prompt files accept prompt, messages and ShareGPT shapes") {
  const std::string path = temp_file(
      "shapes.jsonl",
      R"({"prompt": "Tell me a joke.", "max_tokens": 12, "kind": "jokes"})"
      "\n"
      "\n"
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})"
      "\n"
      R"({"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "It is four, of course."}]})"
      "\n"
      R"({"conversations": [{"from": "gpt", "value": "no question here"}]})"
      "\n");
  int64_t skipped = -1;
  auto entries = load_prompt_file(path, &skipped);
  REQUIRE(entries.ok());
  CHECK(skipped == 1);
  REQUIRE(entries->size() == 3);
  CHECK((*entries)[0].prompt == "Tell me a joke.");
  CHECK((*entries)[0].max_tokens == 12);
  CHECK((*entries)[0].kind == "jokes");
  REQUIRE((*entries)[1].messages.size() == 2);
  CHECK((*entries)[1].messages[1].content == "Hi");
  CHECK((*entries)[1].max_tokens == 0);
  REQUIRE((*entries)[2].messages.size() == 1);
  CHECK((*entries)[2].messages[0].role == "user");
  CHECK((*entries)[2].max_tokens == estimate_tokens("It is four, of course."));

  const std::string array_path = temp_file(
      "array.json",
      R"([{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}, {"prompt": "c"}])");
  auto array = load_prompt_file(array_path);
  REQUIRE(array.ok());
  CHECK(array->size() == 2);

  WorkloadConfig c;
  c.dataset_name = "jsonl";
  c.dataset_path = path;
  c.file_output_len = 99;
  auto w = Workload::create(c);
  REQUIRE(w.ok());
  for (int i = 0; i < 6; ++i) CHECK((*w)->next(0).max_tokens == 99);
}

TEST_CASE("prompt file errors name the file, the line and the field") {
  const std::string path =
      temp_file("bad.jsonl", "{\"prompt\": \"ok\"}\n{\"messages\": [{\"role\": \"user\", \"content\": 5}]}\n");
  auto bad = load_prompt_file(path);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("bad.jsonl:2") && Catch::Contains("messages[0].content"));

  const std::string syntax = temp_file("syntax.jsonl", "{\"prompt\": \"ok\"\n");
  auto bad_syntax = load_prompt_file(syntax);
  REQUIRE_FALSE(bad_syntax.ok());
  CHECK_THAT(bad_syntax.error().message, Catch::Contains("syntax.jsonl:1"));

  const std::string role = temp_file("role.jsonl", "{\"conversations\": [{\"from\": \"wizard\", \"value\": \"x\"}]}\n");
  auto bad_role = load_prompt_file(role);
  REQUIRE_FALSE(bad_role.ok());
  CHECK_THAT(bad_role.error().message, Catch::Contains("wizard"));

  auto missing = load_prompt_file("/nonexistent/prompts.jsonl");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("--dataset-path"));

  WorkloadConfig c;
  c.dataset_name = "sonnet";
  auto unknown = Workload::create(c);
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message, Catch::Contains("--dataset-name") && Catch::Contains("sonnet"));
}
