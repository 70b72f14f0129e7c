// What comes out of the engine: stop strings (with hold-back), stop token ids, ignore_eos, the
// HF fixtures through the whole engine, prompt logits, and the embedded model's structured router.
#include <unistd.h>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "aurora/config/json.hpp"
#include "engine_test_support.hpp"
#include "model/embedded_model.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
namespace fs = std::filesystem;

TEST_CASE("stop strings end the text before the match, across tokens", "[engine][stop]") {
  auto e = test_engine({});
  auto base = run_to_end(*e, make_request(bytes_of("The keeper climbed"), 40));
  const std::string full = base->text;
  REQUIRE(full.size() == 40);
  const std::string stop = full.substr(12, 3);
  const size_t at = full.find(stop);
  auto req = make_request(bytes_of("The keeper climbed"), 40);
  req.sampling.stop = {"never-there", stop};
  auto s = run_to_end(*e, req);
  CHECK(s->completion.reason == FinishReason::kStop);
  REQUIRE(s->completion.stop_string.has_value());
  CHECK(*s->completion.stop_string == stop);
  CHECK_FALSE(s->completion.stop_token_id.has_value());
  CHECK(s->text == full.substr(0, at));
  CHECK(s->tokens.size() == at + stop.size());  // the stop string's tokens were generated
  std::string streamed;
  for (const auto& d : s->deltas) streamed += d;
  CHECK(streamed == s->text);
}

TEST_CASE("a partial stop match is held back, then released when it does not complete", "[engine][stop]") {
  auto e = test_engine({});
  auto base = run_to_end(*e, make_request(bytes_of("int main() {"), 30));
  const std::string full = base->text;
  // A stop string whose first two bytes appear in the output but which never completes.
  const std::string stop = full.substr(5, 2) + "\x01";
  auto req = make_request(bytes_of("int main() {"), 30);
  req.sampling.stop = {stop};
  auto s = run_to_end(*e, req);
  CHECK(s->completion.reason == FinishReason::kLength);
  CHECK_FALSE(s->completion.stop_string.has_value());
  CHECK(s->text == full);
  // After the 7th token the output ends with the stop string's first two bytes: they are held.
  size_t emitted_after_7 = 0;
  for (size_t i = 0; i < 7; ++i) emitted_after_7 += s->deltas[i].size();
  CHECK(emitted_after_7 <= 5);
}

TEST_CASE("stop token ids end generation; the token is counted but adds no text", "[engine][stop]") {
  auto e = test_engine({});
  auto base = run_to_end(*e, make_request(bytes_of("She opened"), 30));
  const auto tokens = base->token_ids();
  const int32_t stop_id = tokens[6];
  const size_t first = size_t(std::find(tokens.begin(), tokens.end(), stop_id) - tokens.begin());
  auto req = make_request(bytes_of("She opened"), 30);
  req.sampling.stop_token_ids = {stop_id};
  auto s = run_to_end(*e, req);
  CHECK(s->completion.reason == FinishReason::kStop);
  CHECK(s->completion.stop_token_id == stop_id);  // vLLM's stop_reason: the id that ended it
  CHECK_FALSE(s->completion.stop_string.has_value());
  CHECK(s->token_ids() == std::vector<int32_t>(tokens.begin(), tokens.begin() + long(first) + 1));
  CHECK(s->text == base->text.substr(0, first));
  CHECK(s->completion.usage.completion_tokens == int32_t(first) + 1);
  CHECK_FALSE(base->completion.stop_token_id.has_value());  // length: nothing stopped it
}

TEST_CASE("EOS from generation_config.json stops generation unless ignore_eos", "[engine][stop]") {
  const EosFixture fixture("eos");
  const auto& greedy = fixture.prompt.greedy;
  const std::vector<int32_t>& ids = fixture.prompt.ids;
  const size_t j = fixture.eos_at;
  EngineOptions o;
  o.model_dirs = {fixture.dir.string()};
  auto e = test_engine(o);
  CHECK(e->models()[0].eos_token_ids == std::vector<int32_t>{greedy[j]});
  auto stopped = run_to_end(*e, make_request(ids, 24));
  CHECK(stopped->completion.reason == FinishReason::kStop);
  CHECK(stopped->token_ids() == std::vector<int32_t>(greedy.begin(), greedy.begin() + long(j) + 1));
  CHECK_FALSE(stopped->completion.stop_token_id.has_value());  // EOS is no stop token (vLLM: null)
  // EOS is checked first: listing it in stop_token_ids too still reports no stop token.
  auto eos_listed = make_request(ids, 24);
  eos_listed.sampling.stop_token_ids = {greedy[j]};
  auto both = run_to_end(*e, eos_listed);
  CHECK(both->completion.reason == FinishReason::kStop);
  CHECK_FALSE(both->completion.stop_token_id.has_value());
  // With ignore_eos the same id is an ordinary stop token.
  eos_listed.sampling.ignore_eos = true;
  auto listed = run_to_end(*e, eos_listed);
  CHECK(listed->completion.reason == FinishReason::kStop);
  CHECK(listed->completion.stop_token_id == greedy[j]);
  auto req = make_request(ids, 24);
  req.sampling.ignore_eos = true;
  auto full = run_to_end(*e, req);
  CHECK(full->completion.reason == FinishReason::kLength);
  CHECK(full->token_ids() == greedy);
}

TEST_CASE("the HF fixtures through the engine: greedy tokens and prompt logits match transformers", "[engine][hf]") {
  for (const char* name : {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"}) {
    const std::string dir = std::string("tests/fixtures/models/") + name;
    auto prompts = fixture_prompts(dir);
    for (int32_t ranks : {1, 2}) {
      INFO(name << " on " << ranks << " ranks");
      EngineOptions o;
      o.model_dirs = {dir};
      o.num_ranks = ranks;
      o.max_num_seqs = 4;
      o.max_num_batched_tokens = 16;
      auto e = test_engine(o);
      std::vector<std::shared_ptr<CollectingSink>> sinks;
      for (const auto& p : prompts) {
        auto req = make_request(p.ids, int32_t(p.greedy.size()));
        req.sampling.ignore_eos = true;  // the reference decoded a fixed number of tokens
        req.return_prompt_logits = true;
        auto sink = std::make_shared<CollectingSink>();
        REQUIRE(e->submit(req, sink).ok());
        sinks.push_back(sink);
      }
      for (size_t i = 0; i < prompts.size(); ++i) {
        REQUIRE(sinks[i]->wait());
        CHECK(sinks[i]->token_ids() == prompts[i].greedy);
        const auto& got = sinks[i]->completion.prompt_logits;
        REQUIRE(got.size() == prompts[i].last_logits.size());
        double worst = 0, scale = 0;
        for (size_t v = 0; v < got.size(); ++v) {
          worst = std::max(worst, std::fabs(double(got[v]) - prompts[i].last_logits[v]));
          scale = std::max(scale, std::fabs(double(prompts[i].last_logits[v])));
        }
        CHECK(worst / scale < 1e-4);
      }
    }
  }
}

TEST_CASE("the structured router: prose, code and digits load different experts", "[engine][router]") {
  const std::vector<std::string> prose = {"The old lighthouse stood at the end of the harbour",
                                          "She opened the letter slowly and read it twice",
                                          "When the library opened its doors in the morning"};
  const std::vector<std::string> digits = {"2024 1250 3141 2718 1618 9876 5432", "12 + 30 = 42 7 * 8 = 56 144 / 12",
                                           "0.001 0.01 0.1 1 10 100 1000 10000"};
  auto load_of = [&](const std::vector<std::string>& prompts) {
    EngineOptions o;
    o.num_ranks = 2;
    auto e = test_engine(o);
    for (const auto& p : prompts) run_to_end(*e, make_request(bytes_of(p), 16));
    return e->stats().layers.at(kEmbeddedModelName);
  };
  auto a = load_of(prose);
  auto b = load_of(digits);
  for (size_t l = 0; l < a.size(); ++l) {
    INFO("layer " << l);
    double ta = 0, tb = 0;
    for (double v : a[l].expert_load) ta += v;
    for (double v : b[l].expert_load) tb += v;
    double tvd = 0;
    for (size_t x = 0; x < a[l].expert_load.size(); ++x)
      tvd += std::fabs(a[l].expert_load[x] / ta - b[l].expert_load[x] / tb);
    tvd /= 2;
    CHECK(tvd > 0.5);  // most of the load moved to other experts
    // Digit traffic: the digit class's own experts are the hottest.
    auto digit_experts = embedded_class_experts(int32_t(l), 4);
    double digit_share = (b[l].expert_load[size_t(digit_experts[0])] + b[l].expert_load[size_t(digit_experts[1])]) / tb;
    double prose_share = (a[l].expert_load[size_t(digit_experts[0])] + a[l].expert_load[size_t(digit_experts[1])]) / ta;
    CHECK(digit_share > 0.3);
    CHECK(prose_share < 0.1);
    CHECK(b[l].load_balance > 2.0);  // a skewed mix is visibly unbalanced
  }
}

TEST_CASE("two models are served side by side, chosen by name", "[engine]") {
  EngineOptions o;
  o.model_dirs = {"tests/fixtures/models/olmoe", "tests/fixtures/models/qwen3_moe"};
  auto e = test_engine(o);
  auto infos = e->models();
  REQUIRE(infos.size() == 2);
  CHECK(infos[0].name == "olmoe");
  CHECK(infos[1].name == "qwen3_moe");
  CHECK(infos[1].vocab_size == 384);
  auto olmoe = fixture_prompts("tests/fixtures/models/olmoe");
  auto qwen3 = fixture_prompts("tests/fixtures/models/qwen3_moe");
  auto a = make_request(olmoe[1].ids, 24);
  a.model = "olmoe";
  a.sampling.ignore_eos = true;
  auto b = make_request(qwen3[2].ids, 24);
  b.model = "qwen3_moe";
  b.sampling.ignore_eos = true;
  auto sa = std::make_shared<CollectingSink>(), sb = std::make_shared<CollectingSink>();
  REQUIRE(e->submit(a, sa).ok());
  REQUIRE(e->submit(b, sb).ok());
  REQUIRE(sa->wait());
  REQUIRE(sb->wait());
  CHECK(sa->token_ids() == olmoe[1].greedy);
  CHECK(sb->token_ids() == qwen3[2].greedy);
  auto s = e->stats();
  CHECK(s.layers.count("olmoe") == 1);
  CHECK(s.layers.count("qwen3_moe") == 1);
}
