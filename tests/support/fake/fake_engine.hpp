// FakeEngine: a deterministic implementation of runtime::Engine for server tests and the server
// benchmark. It runs one engine thread with real continuous-batching mechanics (a bounded waiting
// queue, a running cap, KV blocks reserved per request, cancellation processed at the next step,
// a sink that returns false cancels its request) and emits a known word sequence, so tests can
// assert exact bytes, counts and resource usage.
//
// Generated token i of a request is word (offset + i) % 16 of FakeTokenizer (id 258 + that), where
// offset = seed % 16 (0 without a seed). Per-request directives in the prompt text override the
// options: "[fake:fail_after=K]" (error after K tokens), "[fake:stop_after=K]" (EOS after K tokens
// unless ignore_eos), "[fake:prefill_ms=N]" (first token after N ms), "[fake:hang]" (no tokens
// until cancelled). A generated id listed in stop_token_ids ends the request as the real engine's
// does: finish_reason stop, no text for that token, Completion::stop_token_id set.
// With SamplingParams::logprobs = N, every token reports logprob -0.5 and the top N (at most 16)
// are the words k, k+1, ... (the generated one first) with logprobs -0.5, -1.5, -2.5, ...
//
// Thread safety: every method may be called from any thread (Engine's contract).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "aurora/runtime/engine.hpp"
#include "fake_tokenizer.hpp"

namespace aurora::testing {

struct FakeEngineOptions {
  std::string model_name = "fake-moe";
  int32_t max_context_len = 4096;
  std::chrono::microseconds step_interval{2000};  // one token per running request per step
  std::chrono::microseconds prefill_delay{0};     // before a request's first token
  int32_t max_running = 64;
  int32_t max_waiting = 256;  // past it submit() fails with kResourceExhausted
  int32_t kv_block_size = 16;
  int64_t kv_blocks_total = 65536;  // each request reserves ceil((prompt + max_tokens) / block)
  int32_t fail_after_tokens = -1;   // every request fails after this many tokens (-1 = never)
  int32_t stop_after_tokens = -1;   // every request emits EOS after this many tokens (-1 = never)
  int32_t num_layers = 2;
  int32_t num_experts = 8;
  bool ready = true;
};

class FakeEngine final : public runtime::Engine {
 public:
  explicit FakeEngine(FakeEngineOptions options = {});
  ~FakeEngine() override;

  Result<runtime::RequestId> submit(runtime::GenerationRequest request,
                                    std::shared_ptr<runtime::TokenSink> sink) override;
  void cancel(runtime::RequestId id) override;
  runtime::EngineStats stats() const override;
  std::vector<runtime::ModelInfo> models() const override;
  const runtime::Tokenizer& tokenizer(const std::string& model = "") const override;
  bool ready() const override { return ready_.load(); }
  void shutdown(std::chrono::milliseconds drain_timeout) override;

  void set_ready(bool ready) { ready_.store(ready); }
  // The text of a request's first n tokens (seed: the request's seed, if any).
  static std::string expected_text(int32_t n, uint64_t seed = 0);

  // Counters for tests.
  int64_t num_submitted() const { return submitted_.load(); }
  int64_t num_cancelled() const { return cancelled_.load(); }
  int64_t num_finished() const { return finished_.load(); }
  int64_t num_active() const { return active_.load(); }  // waiting + running
  int64_t kv_blocks_used() const { return kv_used_.load(); }
  int64_t tokens_generated() const { return tokens_.load(); }

 private:
  struct Slot;
  void loop();
  bool step(std::vector<std::unique_ptr<Slot>>& running, std::deque<std::unique_ptr<Slot>>& waiting);
  void finish(Slot& slot, runtime::FinishReason reason, std::optional<Error> error = std::nullopt,
              std::optional<std::string> stop_string = std::nullopt,
              std::optional<int32_t> stop_token_id = std::nullopt);

  const FakeEngineOptions options_;
  FakeTokenizer tokenizer_;
  std::atomic<bool> ready_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Slot>> incoming_;
  std::unordered_set<runtime::RequestId> cancels_;
  runtime::RequestId next_id_ = 1;
  int64_t queued_ = 0;  // incoming + waiting, for the admission bound
  bool accepting_ = true;
  bool stop_ = false;
  bool cancel_everything_ = false;

  std::atomic<int64_t> submitted_{0};
  std::atomic<int64_t> cancelled_{0};
  std::atomic<int64_t> finished_{0};
  std::atomic<int64_t> active_{0};
  std::atomic<int64_t> kv_used_{0};
  std::atomic<int64_t> tokens_{0};
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> steps_{0};
  std::atomic<int32_t> running_count_{0};
  std::atomic<int32_t> waiting_count_{0};
  // stats().seconds_without_progress: since the last token, or since work came to an idle engine
  // (steady-clock ns); "[fake:hang]" requests alone make none, as a wedged engine would.
  std::atomic<int64_t> progress_ns_{runtime::Clock::now().time_since_epoch().count()};
  std::vector<std::atomic<int64_t>> expert_counts_;

  std::thread thread_;
  std::once_flag shutdown_once_;
};

}  // namespace aurora::testing
