// Test sinks for the engine: collect deltas and the completion, optionally pause the engine
// thread (a gate) or refuse deltas, and wait for the end with a timeout.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "aurora/config/json.hpp"
#include "aurora/runtime/engine.hpp"
#include "aurora/runtime/tokenizer.hpp"

namespace aurora::runtime::test {

class CollectingSink : public TokenSink {
 public:
  bool on_delta(const TokenDelta& delta) override {
    std::function<bool(int)> hook;
    int n;
    {
      std::lock_guard lock(mu_);
      text += delta.text;
      deltas.push_back(delta.text);
      tokens.insert(tokens.end(), delta.token_ids.begin(), delta.token_ids.end());
      logprobs.insert(logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
      n = int(deltas.size());
      hook = on_delta_hook;
    }
    return hook ? hook(n) : true;
  }
  void on_finish(const Completion& c) override {
    std::lock_guard lock(mu_);
    completion = c;
    ++finishes;
    cv_.notify_all();
  }
  // Waits for on_finish (true) or gives up after the timeout (false).
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return finishes > 0; });
  }
  std::vector<int32_t> token_ids() {
    std::lock_guard lock(mu_);
    return tokens;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::string text;
  std::vector<std::string> deltas;
  std::vector<int32_t> tokens;
  std::vector<GeneratedLogprobs> logprobs;  // SamplingParams::logprobs: one per token
  Completion completion;
  int finishes = 0;
  std::function<bool(int)> on_delta_hook;  // called with the delta count; return false to refuse
};

// Holds the engine thread inside a sink until release() (tests only: real sinks never block).
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void wait_entered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

inline GenerationRequest make_request(std::vector<int32_t> prompt, int32_t max_tokens, float temperature = 0.0f,
                                      std::optional<uint64_t> seed = std::nullopt) {
  GenerationRequest r;
  r.prompt_ids = std::move(prompt);
  r.sampling.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  return r;
}

// An engine for tests: a 4096-token KV cache unless the options set one.
inline std::unique_ptr<Engine> test_engine(EngineOptions o = {}) {
  if (o.kv_cache_tokens == 0) o.kv_cache_tokens = 4096;
  auto e = create_engine(o);
  REQUIRE(e.ok());
  return std::move(*e);
}

// Submits `r` and waits for its end.
inline std::shared_ptr<CollectingSink> run_to_end(Engine& e, GenerationRequest r) {
  auto sink = std::make_shared<CollectingSink>();
  REQUIRE(e.submit(std::move(r), sink).ok());
  REQUIRE(sink->wait());
  return sink;
}

inline std::vector<int32_t> bytes_of(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

// The logits the token after `prefix` is drawn from, as the engine computes them.
inline std::vector<float> next_token_logits(Engine& e, const std::vector<int32_t>& prefix) {
  auto r = make_request(prefix, 1);
  r.return_prompt_logits = true;
  return run_to_end(e, std::move(r))->completion.prompt_logits;
}

// A fixture model's prompts with the transformers references (expected.json).
struct FixturePrompt {
  std::vector<int32_t> ids, greedy;
  std::vector<float> last_logits;
};
inline std::vector<FixturePrompt> fixture_prompts(const std::string& dir) {
  auto doc = config::JsonDocument::parse_file(dir + "/expected.json");
  REQUIRE(doc.ok());
  std::vector<FixturePrompt> out;
  for (const auto& p : doc->root()["prompts"].items()) {
    FixturePrompt fp;
    for (const auto& v : p["ids"].items()) fp.ids.push_back(int32_t(v.as_int()));
    for (const auto& v : p["greedy"].items()) fp.greedy.push_back(int32_t(v.as_int()));
    for (const auto& v : p["last_logits"].items()) fp.last_logits.push_back(float(v.as_double()));
    out.push_back(std::move(fp));
  }
  return out;
}

// A temporary copy of the mixtral fixture whose generation_config.json declares EOS the first token
// of prompt 0's greedy run (from position 3) that has not appeared before it, so that greedy
// decoding stops there: at greedy[eos_at]. Removed with the object.
struct EosFixture {
  std::filesystem::path dir;
  FixturePrompt prompt;
  size_t eos_at = 0;
  int32_t eos() const { return prompt.greedy[eos_at]; }
  explicit EosFixture(const std::string& tag) {
    const std::string src = "tests/fixtures/models/mixtral";
    prompt = fixture_prompts(src).at(0);
    const auto& greedy = prompt.greedy;
    eos_at = 3;
    while (std::find(greedy.begin(), greedy.begin() + long(eos_at), greedy[eos_at]) != greedy.begin() + long(eos_at))
      ++eos_at;
    dir = std::filesystem::temp_directory_path() / ("aurora_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::copy(src, dir);
    std::ofstream(dir / "generation_config.json", std::ios::trunc) << "{\"eos_token_id\": " << eos() << "}";
  }
  ~EosFixture() { std::filesystem::remove_all(dir); }
  EosFixture(const EosFixture&) = delete;
  EosFixture& operator=(const EosFixture&) = delete;
};

}  // namespace aurora::runtime::test
