#include <catch2/catch.hpp>

#include "executor_harness.hpp"
#include "reference_forward.hpp"
#include "test_models.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;

namespace {

const config::ModelArchitecture kArchs[] = {config::ModelArchitecture::kMixtral, config::ModelArchitecture::kQwen2Moe,
                                            config::ModelArchitecture::kQwen3Moe, config::ModelArchitecture::kOlmoe};

std::vector<int32_t> prompt_of(int n, int vocab, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back((i * 17 + salt * 5 + 3) % vocab);
  return p;
}

double relative_error(const std::vector<float>& got, const Mat& want) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

}  // namespace

TEST_CASE("executor logits match the double-precision reference for every architecture", "[executor]") {
  for (auto arch : kArchs) {
    INFO(config::architecture_name(arch));
    auto model = small_model(arch);
    Harness h(model, 1);
    auto prompt = prompt_of(19, model->config.vocab_size, 1);
    auto got = h.prompt_logits(prompt, int32_t(prompt.size()));
    auto want = reference_logits(*model, prompt);
    CHECK(relative_error(got, want) < 1e-5);
  }
}

TEST_CASE("chunked prefill gives bit-identical logits", "[executor]") {
  for (auto arch : kArchs) {
    INFO(config::architecture_name(arch));
    auto model = small_model(arch);
    Harness h(model, 1);
    auto prompt = prompt_of(23, model->config.vocab_size, 2);
    auto whole = h.prompt_logits(prompt, 23);
    for (int32_t chunk : {1, 3, 8}) {
      auto chunked = h.prompt_logits(prompt, chunk);
      REQUIRE(chunked.size() == whole.size());
      CHECK(chunked == whole);
    }
  }
}

TEST_CASE("logits are bit-identical on 1, 2, 4 and 8 expert-parallel ranks", "[executor][ep]") {
  for (auto arch : kArchs) {
    INFO(config::architecture_name(arch));
    auto model = small_model(arch);
    auto prompt = prompt_of(17, model->config.vocab_size, 3);
    Harness one(model, 1);
    auto base = one.prompt_logits(prompt, 5);
    for (int32_t ranks : {2, 4, 8}) {
      Harness many(model, ranks);
      for (int32_t rank : {0, ranks - 1}) {
        INFO("ranks=" << ranks << " sequence on rank " << rank);
        CHECK(many.prompt_logits(prompt, 5, rank) == base);
      }
    }
  }
}

TEST_CASE("a sequence's logits do not depend on the other sequences of the step", "[executor]") {
  auto model = small_model(config::ModelArchitecture::kQwen2Moe);
  const int32_t V = model->config.vocab_size;
  Harness h(model, 2);
  auto a = prompt_of(11, V, 4), b = prompt_of(14, V, 5), c = prompt_of(6, V, 6);
  auto alone = h.prompt_logits(a, 11, 1);
  std::vector<int32_t> ta, tb, tc;
  REQUIRE(h.allocators[1].allocate(3, ta));
  REQUIRE(h.allocators[0].allocate(4, tb));
  REQUIRE(h.allocators[1].allocate(2, tc));
  StepBatch batch;
  auto chunk = [](int32_t rank, const std::vector<int32_t>& p, const std::vector<int32_t>& t, LogitsMode mode,
                  int32_t row) {
    SequenceChunk s;
    s.rank = rank;
    s.tokens = p.data();
    s.num_tokens = int32_t(p.size());
    s.block_table = t.data();
    s.num_blocks = int32_t(t.size());
    s.logits = mode;
    s.logits_row = row;
    return s;
  };
  batch.chunks.push_back(chunk(0, b, tb, LogitsMode::kLast, 0));
  batch.chunks.push_back(chunk(1, a, ta, LogitsMode::kAllTokens, 1));
  batch.chunks.push_back(chunk(1, c, tc, LogitsMode::kNone, -1));
  batch.num_logits_rows = 12;
  const StepResult& r = h.exec->execute(batch);
  std::vector<float> together(r.logits + V, r.logits + 12 * V);
  CHECK(together == alone);
  // Routing statistics: every token of the step was counted once per chosen expert.
  int64_t routed = 0;
  for (int64_t n : r.routed_tokens[0]) routed += n;
  CHECK(routed == int64_t(a.size() + b.size() + c.size()) * model->config.num_experts_per_tok);
  CHECK(r.routed_tokens[1].empty());  // dense layer
}
