// Aurora against Hugging Face transformers 5.x: the fixtures under tests/fixtures/models were made
// by make_model_fixtures.py (random weights, float32 eager reference). Logits must match within
// 1e-4 relative and greedy tokens must be identical, for all four architectures, on one rank and
// under expert parallelism.
#include <catch2/catch.hpp>
#include <set>

#include "aurora/config/json.hpp"
#include "checkpoint/checkpoint.hpp"
#include "executor_harness.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;

namespace {

struct Expected {
  std::string architecture, dtype, format, rope_form;
  bool sharded = false;
  struct Prompt {
    std::vector<int32_t> ids, greedy;
    std::vector<float> last_logits;
  };
  std::vector<Prompt> prompts;
  std::vector<float> all_logits;  // [len(prompts[0].ids), vocab]
};

std::vector<int32_t> ints(const config::JsonValue& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.items()) out.push_back(int32_t(x.as_int()));
  return out;
}
std::vector<float> floats(const config::JsonValue& v) {
  std::vector<float> out;
  for (const auto& x : v.items()) out.push_back(float(x.as_double()));
  return out;
}

Expected load_expected(const std::string& dir) {
  auto doc = config::JsonDocument::parse_file(dir + "/expected.json");
  REQUIRE(doc.ok());
  auto root = doc->root();
  Expected e;
  e.architecture = root["architecture"].as_string();
  e.dtype = root["dtype"].as_string();
  e.format = root["format"].as_string();
  e.rope_form = root["rope_form"].as_string();
  e.sharded = root["sharded"].as_bool();
  for (const auto& p : root["prompts"].items()) {
    e.prompts.push_back({ints(p["ids"]), ints(p["greedy"]), floats(p["last_logits"])});
  }
  for (const auto& row : root["all_logits"].items()) {
    auto r = floats(row);
    e.all_logits.insert(e.all_logits.end(), r.begin(), r.end());
  }
  return e;
}

double relative_error(const float* got, const std::vector<float>& want) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return worst / scale;
}

const char* kFixtures[] = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};
const std::string kRoot = "tests/fixtures/models/";

}  // namespace

TEST_CASE("the fixtures cover every layout the loader must read", "[hf]") {
  std::set<std::string> dtypes, formats, rope_forms, archs;
  bool sharded = false;
  for (const char* name : kFixtures) {
    auto e = load_expected(kRoot + name);
    dtypes.insert(e.dtype);
    formats.insert(e.format);
    rope_forms.insert(e.rope_form);
    archs.insert(e.architecture);
    sharded = sharded || e.sharded;
  }
  CHECK(archs ==
        std::set<std::string>{"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM"});
  CHECK(dtypes == std::set<std::string>{"float32", "bfloat16", "float16"});
  CHECK(formats == std::set<std::string>{"hub", "fused"});
  CHECK(rope_forms == std::set<std::string>{"rope_parameters", "rope_theta"});
  CHECK(sharded);
}

TEST_CASE("logits match transformers within 1e-4 relative (float32)", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    auto model = load_model(kRoot + name);
    REQUIRE(model.ok());
    auto e = load_expected(kRoot + name);
    CHECK(config::architecture_name((*model)->config.architecture) == e.architecture);
    Harness h(*model, 1);
    const int32_t V = (*model)->config.vocab_size;
    auto all = h.prompt_logits(e.prompts[0].ids, int32_t(e.prompts[0].ids.size()));
    REQUIRE(all.size() == e.all_logits.size());
    const double err = relative_error(all.data(), e.all_logits);
    INFO("all positions: relative error " << err);
    CHECK(err < 1e-4);
    for (const auto& p : e.prompts) {
      auto logits = h.prompt_logits(p.ids, 5);  // chunked prefill
      const double last_err = relative_error(logits.data() + (p.ids.size() - 1) * size_t(V), p.last_logits);
      INFO("last position: relative error " << last_err);
      CHECK(last_err < 1e-4);
    }
  }
}

TEST_CASE("greedy tokens are identical to transformers, on 1 and 4 ranks", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    auto model = load_model(kRoot + name);
    REQUIRE(model.ok());
    auto e = load_expected(kRoot + name);
    Harness one(*model, 1);
    Harness four(*model, 4);
    for (const auto& p : e.prompts) {
      CHECK(greedy_decode(one, p.ids, int32_t(p.greedy.size())) == p.greedy);
      CHECK(greedy_decode(four, p.ids, int32_t(p.greedy.size()), 4, 3) == p.greedy);
    }
  }
}

TEST_CASE("generation_config.json supplies the EOS ids", "[hf]") {
  auto model = load_model(kRoot + "qwen2_moe");
  REQUIRE(model.ok());
  CHECK((*model)->eos_token_ids() == std::vector<int32_t>{2, 3});
  CHECK((*model)->generation.temperature.value() == Approx(0.8));
  CHECK((*model)->generation.top_k.value() == 20);
  auto mixtral = load_model(kRoot + "mixtral");
  REQUIRE(mixtral.ok());
  CHECK((*mixtral)->checkpoint->num_shards() > 1);
  CHECK((*mixtral)->config.rope.theta == 1e6);
}
