#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "engine_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Engine> embedded_engine(EngineOptions o = {}) {
  if (o.kv_cache_tokens == 0) o.kv_cache_tokens = 8192;
  auto e = create_engine(o);
  REQUIRE(e.ok());
  return std::move(*e);
}

struct Run {
  std::shared_ptr<CollectingSink> sink = std::make_shared<CollectingSink>();
  RequestId id = 0;
};

Run start(Engine& e, GenerationRequest r) {
  Run run;
  auto id = e.submit(std::move(r), run.sink);
  REQUIRE(id.ok());
  run.id = *id;
  return run;
}

Run generate(Engine& e, GenerationRequest r) {
  Run run = start(e, std::move(r));
  REQUIRE(run.sink->wait());
  return run;
}

const std::vector<std::string> kPrompts = {"The keeper climbed the stairs",
                                           "int main() { return 0; }",
                                           "12 + 30 = 42\n7 * 8 =",
                                           "She opened the letter",
                                           "def fibonacci(n):",
                                           "2024-03-15 1250 3.14",
                                           "Good software is written",
                                           "for (size_t i = 0; i < n; ++i)",
                                           "0.001 0.01 0.1 1 10",
                                           "When the library opened",
                                           "class Cache:",
                                           "+1 555 0100 08:30",
                                           "It was late in the autumn",
                                           "struct Request {",
                                           "144 / 12 = 12",
                                           "The river had risen"};

}  // namespace

TEST_CASE("the embedded model generates plausible text, quickly", "[engine]") {
  auto e = embedded_engine();
  auto t0 = std::chrono::steady_clock::now();
  auto run = generate(*e, make_request(bytes_of("The old lighthouse"), 64, 0.7f, 1));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(run.sink->completion.reason == FinishReason::kLength);
  CHECK(run.sink->completion.usage.completion_tokens == 64);
  CHECK(run.sink->completion.usage.prompt_tokens == 18);
  CHECK(run.sink->tokens.size() == 64);
  const std::string& text = run.sink->text;
  INFO("generated: " << text);
  CHECK(text.size() == 64);
  int printable = 0, letters = 0;
  for (char c : text) {
    printable += (c >= 32 && c < 127) || c == '\n';
    letters += std::isalpha(static_cast<unsigned char>(c)) != 0;
  }
  CHECK(printable == int(text.size()));
  CHECK(letters > int(text.size()) / 3);
  CHECK(elapsed < 10s);  // a sanity bound only; speed is measured by bench/runtime
}

TEST_CASE("timing and usage are filled in order", "[engine]") {
  auto e = embedded_engine();
  auto run = generate(*e, make_request(bytes_of("abc"), 5));
  const auto& t = run.sink->completion.timing;
  CHECK(t.arrived <= t.first_scheduled);
  CHECK(t.first_scheduled <= t.first_token);
  CHECK(t.first_token <= t.finished);
  CHECK(run.sink->finishes == 1);
  auto s = e->stats();
  CHECK(s.prompt_tokens_total == 3);
  CHECK(s.generation_tokens_total == 5);
  CHECK(s.num_steps_total >= 5);
  CHECK(s.kv_blocks_used == 0);
  CHECK(s.kv_blocks_total > 0);
  CHECK(s.num_requests_running == 0);
  REQUIRE(s.layers.count("aurora-embedded"));
  const auto& layers = s.layers.at("aurora-embedded");
  REQUIRE(layers.size() == 4);
  double routed = 0;
  for (double v : layers[0].expert_load) routed += v;
  CHECK(routed == (3 + 5 - 1) * 2);  // every computed token, top-2
  CHECK(layers[0].load_balance >= 1.0);
  CHECK(s.plan_version >= 1);
}

TEST_CASE("a request's output is the same alone or in a batch of 16", "[engine][batching]") {
  EngineOptions o;
  o.max_num_seqs = 16;
  o.max_num_batched_tokens = 64;  // forces chunked prefill in the batch
  auto e = embedded_engine(o);
  auto target = [&] { return make_request(bytes_of("The keeper climbed the stairs"), 40, 0.9f, 1234); };
  auto greedy = [&] { return make_request(bytes_of("class Cache:\n"), 40); };
  auto alone = generate(*e, target());
  auto alone_greedy = generate(*e, greedy());
  std::vector<Run> runs;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    runs.push_back(start(*e, make_request(bytes_of(kPrompts[i]), 30 + int32_t(i), 1.0f, 77 + i)));
    if (i == 5) runs.push_back(start(*e, target()));
    if (i == 9) runs.push_back(start(*e, greedy()));
  }
  for (auto& r : runs) REQUIRE(r.sink->wait());
  CHECK(runs[6].sink->token_ids() == alone.sink->token_ids());
  CHECK(runs[6].sink->text == alone.sink->text);
  CHECK(runs[11].sink->token_ids() == alone_greedy.sink->token_ids());
}

TEST_CASE("sampling with a seed is reproducible; other seeds differ", "[engine][sampling]") {
  auto e = embedded_engine();
  auto req = [&](uint64_t seed) { return make_request(bytes_of("It was late"), 48, 1.0f, seed); };
  auto a = generate(*e, req(5));
  auto b = generate(*e, req(5));
  auto c = generate(*e, req(6));
  CHECK(a.sink->token_ids() == b.sink->token_ids());
  CHECK(a.sink->token_ids() != c.sink->token_ids());
  GenerationRequest k = req(5);
  k.sampling.top_k = 1;  // top-k 1 is greedy
  auto greedy = generate(*e, make_request(bytes_of("It was late"), 48));
  CHECK(generate(*e, k).sink->token_ids() == greedy.sink->token_ids());
}

TEST_CASE("outputs are identical on 1, 2, 4 and 8 expert-parallel ranks", "[engine][ep]") {
  std::vector<std::vector<int32_t>> base;
  for (int32_t ranks : {1, 2, 4, 8}) {
    EngineOptions o;
    o.num_ranks = ranks;
    o.max_num_seqs = 8;
    o.max_num_batched_tokens = 48;
    auto e = embedded_engine(o);
    std::vector<Run> runs;
    for (size_t i = 0; i < 6; ++i) {
      runs.push_back(start(*e, make_request(bytes_of(kPrompts[i]), 24, i % 2 ? 0.8f : 0.0f, 99 + i)));
    }
    std::vector<std::vector<int32_t>> outs;
    for (auto& r : runs) {
      REQUIRE(r.sink->wait());
      outs.push_back(r.sink->token_ids());
    }
    if (base.empty()) {
      base = outs;
    } else {
      INFO("ranks = " << ranks);
      CHECK(outs == base);
    }
    auto s = e->stats();
    const auto& layer0 = s.layers.at("aurora-embedded")[0];
    if (ranks > 1) {
      CHECK(layer0.a2a_lower_bound_seconds >= 0.0);
    }
  }
}
