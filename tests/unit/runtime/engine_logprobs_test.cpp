// Log probabilities (SamplingParams::logprobs): the host computation against an independent
// log-softmax, and the engine's per-token output on the embedded model checked against the logits
// the engine itself returns (return_prompt_logits), token by token.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>

#include "engine/token_logprobs.hpp"
#include "engine_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;

namespace {

// log_softmax in double, written the textbook way (no shared code with the engine).
std::vector<double> log_softmax(const std::vector<float>& logits) {
  double m = -std::numeric_limits<double>::infinity();
  for (float x : logits) m = std::max(m, double(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - m);
  std::vector<double> out;
  for (float x : logits) out.push_back(double(x) - m - std::log(sum));
  return out;
}

void check_sorted_top(const GeneratedLogprobs& lp, size_t n) {
  REQUIRE(lp.top.size() == n);
  double mass = 0;
  for (size_t i = 0; i < lp.top.size(); ++i) {
    CHECK(lp.top[i].logprob <= 0.0f);
    mass += std::exp(double(lp.top[i].logprob));
    if (i > 0) {
      const bool ordered = lp.top[i - 1].logprob > lp.top[i].logprob ||
                           (lp.top[i - 1].logprob == lp.top[i].logprob && lp.top[i - 1].token_id < lp.top[i].token_id);
      CHECK(ordered);
    }
  }
  CHECK(mass <= 1.0 + 1e-6);
}

}  // namespace

TEST_CASE("compute_token_logprobs matches an independent log-softmax; ties go to the lower id", "[logprobs]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> logits(1000);
  for (auto& x : logits) x = normal(rng);
  logits[17] = logits[900] = 30.0f;  // a tie at the top
  const auto want = log_softmax(logits);
  const auto lp = compute_token_logprobs(logits.data(), int32_t(logits.size()), 123, 5);
  CHECK(lp.sampled.token_id == 123);
  CHECK(lp.sampled.logprob == Approx(want[123]).margin(1e-5));
  check_sorted_top(lp, 5);
  CHECK(lp.top[0].token_id == 17);
  CHECK(lp.top[1].token_id == 900);
  std::vector<size_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  for (size_t i = 0; i < 5; ++i) {
    CHECK(lp.top[i].token_id == int32_t(order[i]));
    CHECK(lp.top[i].logprob == Approx(want[order[i]]).margin(1e-5));
  }
  CHECK(compute_token_logprobs(logits.data(), int32_t(logits.size()), 0, 0).top.empty());
  CHECK(compute_token_logprobs(logits.data(), 3, 0, 10).top.size() == 3);  // clamped to the vocabulary

  // A masked token (-inf) and a NaN get -inf; the rest still normalise over the finite entries.
  std::vector<float> masked = {0.0f, -std::numeric_limits<float>::infinity(), std::nanf(""), 0.0f};
  const auto m = compute_token_logprobs(masked.data(), 4, 1, 4);
  CHECK(std::isinf(m.sampled.logprob));
  CHECK(m.top[0].logprob == Approx(std::log(0.5)));
  CHECK(m.top[0].token_id == 0);
  CHECK(m.top[1].token_id == 3);
  CHECK(std::isinf(m.top[2].logprob));
  CHECK(m.top[2].token_id == 1);  // -inf ties: lower id first
}

TEST_CASE("engine logprobs: each token's logprob is log_softmax of its logits row", "[engine][logprobs]") {
  auto e = test_engine();
  const auto prompt = bytes_of("The lighthouse keeper");
  auto req = make_request(prompt, 6);  // greedy
  req.sampling.logprobs = 5;
  req.return_prompt_logits = true;
  auto s = run_to_end(*e, req);
  REQUIRE(s->tokens.size() == 6);
  REQUIRE(s->logprobs.size() == s->tokens.size());

  std::vector<int32_t> prefix = prompt;
  for (size_t i = 0; i < s->tokens.size(); ++i) {
    INFO("token " << i);
    const auto& lp = s->logprobs[i];
    CHECK(lp.sampled.token_id == s->tokens[i]);
    const std::vector<float> logits = i == 0 ? s->completion.prompt_logits : next_token_logits(*e, prefix);
    REQUIRE(!logits.empty());
    const auto want = log_softmax(logits);
    CHECK(lp.sampled.logprob == Approx(want[size_t(s->tokens[i])]).margin(1e-4));
    check_sorted_top(lp, 5);
    CHECK(lp.top[0].token_id == s->tokens[i]);  // greedy: the sampled token is the most likely
    CHECK(lp.top[0].logprob == lp.sampled.logprob);
    for (const auto& t : lp.top) CHECK(t.logprob == Approx(want[size_t(t.token_id)]).margin(1e-4));
    prefix.push_back(s->tokens[i]);
  }
}

TEST_CASE("engine logprobs: sampling is unchanged, only requests that ask get them", "[engine][logprobs]") {
  auto e = test_engine();
  const auto prompt = bytes_of("Once upon a time");
  auto plain = make_request(prompt, 12, 1.0f, 42);
  auto with = plain;
  with.sampling.logprobs = 0;
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  REQUIRE(e->submit(plain, a).ok());  // in one batch with the one that asks
  REQUIRE(e->submit(with, b).ok());
  REQUIRE(a->wait());
  REQUIRE(b->wait());
  CHECK(a->tokens == b->tokens);
  CHECK(a->logprobs.empty());
  REQUIRE(b->logprobs.size() == b->tokens.size());
  for (size_t i = 0; i < b->tokens.size(); ++i) {
    CHECK(b->logprobs[i].sampled.token_id == b->tokens[i]);
    CHECK(b->logprobs[i].sampled.logprob <= 0.0f);
    CHECK(b->logprobs[i].top.empty());
  }
}

TEST_CASE("engine logprobs: out-of-range counts are refused naming the field", "[engine][logprobs]") {
  auto e = test_engine();
  auto req = make_request(bytes_of("x"), 2);
  req.sampling.logprobs = -1;
  auto r = e->submit(req, std::make_shared<CollectingSink>());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "logprobs");
  req.sampling.logprobs = 1 << 20;
  auto big = e->submit(req, std::make_shared<CollectingSink>());
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().message.find("1048576") != std::string::npos);
}
