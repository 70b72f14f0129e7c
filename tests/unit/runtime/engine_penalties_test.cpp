// Penalties, logit_bias, min_p and min_tokens through the engine on the embedded model: each
// generated token is checked against the raw logits the engine returns for its prefix
// (return_prompt_logits), penalised here by an independent computation; logprobs stay raw.
#include <unistd.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "aurora/config/json.hpp"
#include "engine_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
namespace fs = std::filesystem;

namespace {

int32_t argmax(const std::vector<float>& v) { return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); }

int32_t num_repeats(const std::vector<int32_t>& tokens) {
  return int32_t(tokens.size() - std::set<int32_t>(tokens.begin(), tokens.end()).size());
}

// Greedy decoding of `n` tokens by hand: raw logits from the engine, penalties applied here.
std::vector<int32_t> reference_greedy(Engine& e, const std::vector<int32_t>& prompt, int32_t n, float frequency,
                                      float presence, float repetition) {
  std::vector<int32_t> seq = prompt, out;
  for (int32_t i = 0; i < n; ++i) {
    auto logits = next_token_logits(e, seq);
    std::map<int32_t, int32_t> counts;
    for (int32_t t : out) ++counts[t];
    std::set<int32_t> seen(seq.begin(), seq.end());
    for (int32_t t : seen) logits[t] = logits[t] > 0 ? logits[t] / repetition : logits[t] * repetition;
    for (auto [t, c] : counts) logits[t] -= frequency * float(c) + presence;
    out.push_back(argmax(logits));
    seq.push_back(out.back());
  }
  return out;
}

const std::vector<int32_t> kPrompt = bytes_of("The keeper climbed the stairs");

}  // namespace

std::vector<int32_t> head(const std::vector<int32_t>& v, size_t n) {
  return std::vector<int32_t>(v.begin(), v.begin() + long(std::min(n, v.size())));
}

TEST_CASE("frequency and presence penalties: greedy follows the penalised logits and repeats less",
          "[engine][penalties]") {
  auto e = test_engine({});
  const int32_t n = 24;
  auto base = run_to_end(*e, make_request(kPrompt, n));
  REQUIRE(num_repeats(base->token_ids()) > 0);  // the unpenalised greedy run repeats itself
  auto req = make_request(kPrompt, n);
  req.sampling.frequency_penalty = 2.0f;
  req.sampling.presence_penalty = 0.5f;
  auto penalised = run_to_end(*e, req);
  CHECK(num_repeats(penalised->token_ids()) < num_repeats(base->token_ids()));
  CHECK(head(penalised->token_ids(), 10) == reference_greedy(*e, kPrompt, 10, 2.0f, 0.5f, 1.0f));
}

TEST_CASE("repetition penalty covers prompt and output tokens", "[engine][penalties]") {
  auto e = test_engine({});
  const int32_t n = 24;
  auto base = run_to_end(*e, make_request(kPrompt, n));
  auto req = make_request(kPrompt, n);
  req.sampling.repetition_penalty = 1.5f;
  auto penalised = run_to_end(*e, req);
  CHECK(penalised->token_ids() != base->token_ids());
  CHECK(num_repeats(penalised->token_ids()) < num_repeats(base->token_ids()));
  CHECK(head(penalised->token_ids(), 10) == reference_greedy(*e, kPrompt, 10, 0.0f, 0.0f, 1.5f));
}

TEST_CASE("logit_bias +100 forces a token at temperature 0; logprobs stay raw", "[engine][penalties]") {
  auto e = test_engine({});
  const auto raw = next_token_logits(*e, kPrompt);
  const int32_t forced = 'Q';
  REQUIRE(argmax(raw) != forced);
  auto req = make_request(kPrompt, 6);
  req.sampling.logit_bias = {{forced, 100.0f}};
  req.sampling.logprobs = 1;
  auto s = run_to_end(*e, req);
  CHECK(s->token_ids() == std::vector<int32_t>(6, forced));
  // The first token's logprob is the raw log-softmax, before the bias.
  double m = *std::max_element(raw.begin(), raw.end()), sum = 0;
  for (float x : raw) sum += std::exp(double(x) - m);
  REQUIRE(!s->logprobs.empty());
  CHECK(s->logprobs[0].sampled.logprob == Approx(double(raw[forced]) - m - std::log(sum)).margin(1e-4));
  CHECK(s->logprobs[0].top[0].token_id == argmax(raw));
  // A -100 bias on every token the greedy run chose keeps them all out.
  const auto chosen = run_to_end(*e, make_request(kPrompt, 8))->token_ids();
  const std::set<int32_t> chosen_set(chosen.begin(), chosen.end());
  auto avoid = make_request(kPrompt, 8);
  for (int32_t t : chosen_set) avoid.sampling.logit_bias.emplace_back(t, -100.0f);
  for (int32_t t : run_to_end(*e, avoid)->token_ids()) CHECK(chosen_set.count(t) == 0);
}

TEST_CASE("min_p = 1 at temperature 1 keeps only the most likely token: the greedy output", "[engine][penalties]") {
  auto e = test_engine({});
  auto greedy = run_to_end(*e, make_request(kPrompt, 16));
  for (uint64_t seed : {1u, 2u, 3u}) {
    auto req = make_request(kPrompt, 16, 1.0f, seed);
    req.sampling.min_p = 1.0f;
    CHECK(run_to_end(*e, req)->token_ids() == greedy->token_ids());
  }
  // A small min_p still samples (some seed leaves the greedy path).
  bool differs = false;
  for (uint64_t seed = 1; seed <= 8 && !differs; ++seed) {
    auto req = make_request(kPrompt, 16, 1.0f, seed);
    req.sampling.min_p = 0.01f;
    differs = run_to_end(*e, req)->token_ids() != greedy->token_ids();
  }
  CHECK(differs);
}

TEST_CASE("min_tokens holds back stop_token_ids until enough tokens are generated", "[engine][penalties]") {
  auto e = test_engine({});
  auto base = run_to_end(*e, make_request(kPrompt, 30));
  const auto tokens = base->token_ids();
  const int32_t stop_id = tokens[2];
  auto req = make_request(kPrompt, 30);
  req.sampling.stop_token_ids = {stop_id};
  auto early = run_to_end(*e, req);
  REQUIRE(early->token_ids().size() <= 3);
  req.sampling.min_tokens = 10;
  auto s = run_to_end(*e, req);
  REQUIRE(s->token_ids().size() >= 10);
  for (size_t i = 0; i < 10; ++i) CHECK(s->token_ids()[i] != stop_id);
  if (s->completion.reason == FinishReason::kStop) CHECK(s->token_ids().back() == stop_id);
}

TEST_CASE("min_tokens: no stop string ends within the first min_tokens tokens (vLLM)", "[engine][penalties]") {
  auto e = test_engine({});
  auto base = run_to_end(*e, make_request(kPrompt, 30));
  REQUIRE(base->text.size() == 30);  // one byte per token
  const std::string stop = base->text.substr(1, 1);
  const size_t first = base->text.find(stop);
  REQUIRE(first <= 1);
  auto req = make_request(kPrompt, 30);
  req.sampling.stop = {stop};
  auto early = run_to_end(*e, req);
  CHECK(early->text == base->text.substr(0, first));
  req.sampling.min_tokens = 20;
  auto s = run_to_end(*e, req);
  CHECK(s->token_ids().size() >= 20);
  // The output is the unconstrained greedy text up to a match that ends after token 20.
  const size_t later = base->text.find(stop, 20);
  CHECK(s->text == base->text.substr(0, later == std::string::npos ? 30 : later));
}

TEST_CASE("min_tokens holds back EOS; the request then runs on", "[engine][penalties]") {
  // The mixtral fixture with its greedy run's j-th token declared EOS.
  const EosFixture fixture("min_tokens");
  const auto& greedy = fixture.prompt.greedy;
  const std::vector<int32_t>& ids = fixture.prompt.ids;
  const size_t j = fixture.eos_at;
  EngineOptions o;
  o.model_dirs = {fixture.dir.string()};
  auto e = test_engine(o);
  auto stopped = run_to_end(*e, make_request(ids, 24));
  REQUIRE(stopped->token_ids().size() == j + 1);  // stops at EOS
  auto req = make_request(ids, 24);
  req.sampling.min_tokens = int32_t(j) + 4;
  auto s = run_to_end(*e, req);
  CHECK(s->token_ids().size() >= j + 4);
  CHECK(head(s->token_ids(), j) == head(greedy, j));  // unchanged before EOS would come
  for (size_t i = 0; i < j + 4 && i < s->token_ids().size(); ++i) CHECK(s->token_ids()[i] != greedy[j]);
}

TEST_CASE("the engine rejects out-of-range penalty fields, naming field and value", "[engine][penalties]") {
  auto e = test_engine({});
  auto submit_error = [&](void (*set)(SamplingParams&)) {
    auto r = make_request(kPrompt, 8);
    set(r.sampling);
    auto st = e->submit(std::move(r), std::make_shared<CollectingSink>());
    REQUIRE_FALSE(st.ok());
    return st.error().message;
  };
  CHECK_THAT(submit_error([](SamplingParams& s) { s.presence_penalty = 2.5f; }),
             Catch::Contains("presence_penalty") && Catch::Contains("2.5"));
  CHECK_THAT(submit_error([](SamplingParams& s) { s.frequency_penalty = -3.0f; }),
             Catch::Contains("frequency_penalty") && Catch::Contains("-3"));
  CHECK_THAT(submit_error([](SamplingParams& s) { s.repetition_penalty = 0.0f; }),
             Catch::Contains("repetition_penalty"));
  CHECK_THAT(submit_error([](SamplingParams& s) { s.min_p = 1.5f; }),
             Catch::Contains("min_p") && Catch::Contains("1.5"));
  CHECK_THAT(submit_error([](SamplingParams& s) { s.min_tokens = 9; }), Catch::Contains("min_tokens"));
  CHECK_THAT(submit_error([](SamplingParams& s) {
               s.logit_bias = {{1 << 20, 1.0f}};
             }),
             Catch::Contains("logit_bias.1048576"));
  CHECK_THAT(submit_error([](SamplingParams& s) {
               s.logit_bias = {{5, 101.0f}};
             }),
             Catch::Contains("logit_bias.5") && Catch::Contains("101"));
}
