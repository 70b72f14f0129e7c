#include "fake_engine.hpp"

#include <algorithm>
#include <cstdlib>

namespace aurora::testing {

using runtime::Clock;

struct FakeEngine::Slot {
  runtime::RequestId id = 0;
  runtime::GenerationRequest request;
  std::shared_ptr<runtime::TokenSink> sink;
  runtime::RequestTiming timing;
  int32_t generated = 0;
  int32_t offset = 0;
  int32_t fail_after = -1;
  int32_t stop_after = -1;
  bool hang = false;
  std::chrono::microseconds prefill{0};
  Clock::time_point first_token_at;
  int64_t kv_blocks = 0;
  std::string text;    // everything generated
  size_t emitted = 0;  // bytes of `text` already handed to the sink
};

namespace {

// "[fake:key=N]" in the prompt text, or `fallback`.
int64_t directive(const std::string& text, const std::string& key, int64_t fallback) {
  const std::string marker = "[fake:" + key + "=";
  const size_t at = text.find(marker);
  if (at == std::string::npos) return fallback;
  return std::strtoll(text.c_str() + at + marker.size(), nullptr, 10);
}

// The longest suffix of `text` that is a proper prefix of a stop string: it may still become a
// match, so it is held back (the engine API's contract).
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; --len) {
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  return hold;
}

}  // namespace

FakeEngine::FakeEngine(FakeEngineOptions options)
    : options_(std::move(options)),
      ready_(options_.ready),
      expert_counts_(static_cast<size_t>(options_.num_layers * options_.num_experts)) {
  for (auto& c : expert_counts_) c.store(0);
  thread_ = std::thread([this] { loop(); });
}

FakeEngine::~FakeEngine() { shutdown(std::chrono::milliseconds(0)); }

std::string FakeEngine::expected_text(int32_t n, uint64_t seed) {
  std::string out;
  const auto offset = static_cast<int32_t>(seed % FakeTokenizer::kNumWords);
  for (int32_t i = 0; i < n; ++i) out += FakeTokenizer::word((offset + i) % FakeTokenizer::kNumWords);
  return out;
}

Result<runtime::RequestId> FakeEngine::submit(runtime::GenerationRequest request,
                                              std::shared_ptr<runtime::TokenSink> sink) {
  if (request.prompt_ids.empty()) return Error::invalid("prompt_ids", "must not be empty");
  if (static_cast<int64_t>(request.prompt_ids.size()) + request.sampling.max_tokens > options_.max_context_len) {
    return Error::invalid("max_tokens", "prompt + max_tokens exceeds the context length");
  }
  auto slot = std::make_unique<Slot>();
  auto prompt_text = tokenizer_.decode(request.prompt_ids, true);
  const std::string text = prompt_text.ok() ? *prompt_text : std::string();
  slot->fail_after = static_cast<int32_t>(directive(text, "fail_after", options_.fail_after_tokens));
  slot->stop_after = static_cast<int32_t>(directive(text, "stop_after", options_.stop_after_tokens));
  slot->prefill = std::chrono::milliseconds(directive(text, "prefill_ms", 0)) + options_.prefill_delay;
  slot->hang = text.find("[fake:hang]") != std::string::npos;
  slot->offset = request.sampling.seed ? static_cast<int32_t>(*request.sampling.seed % FakeTokenizer::kNumWords) : 0;
  slot->request = std::move(request);
  slot->sink = std::move(sink);
  std::lock_guard lock(mutex_);
  if (!accepting_) return Error::make(ErrorCode::kUnavailable, "the engine is shutting down");
  if (queued_ >= options_.max_waiting) return Error::make(ErrorCode::kResourceExhausted, "the waiting queue is full");
  slot->id = next_id_++;
  slot->timing.arrived = Clock::now();
  const runtime::RequestId id = slot->id;
  incoming_.push_back(std::move(slot));
  ++queued_;
  submitted_.fetch_add(1);
  if (active_.fetch_add(1) == 0) progress_ns_.store(Clock::now().time_since_epoch().count());
  wake_.notify_one();
  return id;
}

void FakeEngine::cancel(runtime::RequestId id) {
  std::lock_guard lock(mutex_);
  cancels_.insert(id);
  wake_.notify_one();
}

void FakeEngine::finish(Slot& slot, runtime::FinishReason reason, std::optional<Error> error,
                        std::optional<std::string> stop_string, std::optional<int32_t> stop_token_id) {
  runtime::Completion c;
  c.reason = reason;
  c.usage.prompt_tokens = static_cast<int32_t>(slot.request.prompt_ids.size());
  c.usage.completion_tokens = slot.generated;
  slot.timing.finished = Clock::now();
  c.timing = slot.timing;
  c.error = std::move(error);
  c.stop_string = std::move(stop_string);
  c.stop_token_id = stop_token_id;
  kv_used_.fetch_sub(slot.kv_blocks);
  slot.kv_blocks = 0;
  if (reason == runtime::FinishReason::kCancelled) cancelled_.fetch_add(1);
  finished_.fetch_add(1);
  active_.fetch_sub(1);
  auto sink = std::move(slot.sink);
  if (sink) sink->on_finish(c);
}

void FakeEngine::loop() {
  std::vector<std::unique_ptr<Slot>> running;
  std::deque<std::unique_ptr<Slot>> waiting;
  auto next_step = Clock::now();
  for (;;) {
    std::unordered_set<runtime::RequestId> cancels;
    bool cancel_all = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || cancel_everything_ || !incoming_.empty() || !cancels_.empty() || !running.empty() ||
               !waiting.empty();
      });
      if (stop_ && running.empty() && waiting.empty() && incoming_.empty()) break;
      while (!incoming_.empty()) {
        waiting.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
      cancels.swap(cancels_);
      cancel_all = cancel_everything_ || stop_;
    }
    // Cancellations first: a cancelled request frees its KV blocks within this step.
    size_t dequeued = 0;
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (cancel_all || cancels.count((*it)->id) != 0) {
        finish(**it, runtime::FinishReason::kCancelled);
        it = waiting.erase(it);
        ++dequeued;
      } else {
        ++it;
      }
    }
    for (auto& slot : running) {
      if (cancel_all || cancels.count(slot->id) != 0) {
        finish(*slot, runtime::FinishReason::kCancelled);
        slot.reset();
      }
    }
    std::erase(running, nullptr);
    // Admission: a request reserves the KV blocks of its whole context at once.
    const auto now = Clock::now();
    while (static_cast<int32_t>(running.size()) < options_.max_running && !waiting.empty()) {
      auto& slot = *waiting.front();
      const int64_t tokens = static_cast<int64_t>(slot.request.prompt_ids.size()) + slot.request.sampling.max_tokens;
      const int64_t blocks = (tokens + options_.kv_block_size - 1) / options_.kv_block_size;
      if (kv_used_.load() + blocks > options_.kv_blocks_total) break;
      kv_used_.fetch_add(blocks);
      slot.kv_blocks = blocks;
      slot.timing.first_scheduled = now;
      slot.first_token_at = now + slot.prefill;
      prompt_tokens_.fetch_add(static_cast<int64_t>(slot.request.prompt_ids.size()));
      running.push_back(std::move(waiting.front()));
      waiting.pop_front();
      ++dequeued;
    }
    if (dequeued > 0) {
      std::lock_guard lock(mutex_);
      queued_ -= static_cast<int64_t>(dequeued);
    }
    // One token per running request.
    for (auto& slot_ptr : running) {
      Slot& slot = *slot_ptr;
      if (slot.hang || now < slot.first_token_at) continue;
      if (slot.fail_after >= 0 && slot.generated >= slot.fail_after) {
        finish(
            slot, runtime::FinishReason::kError,
            Error::make(ErrorCode::kInternal, "injected failure after " + std::to_string(slot.generated) + " tokens"));
        slot_ptr.reset();
        continue;
      }
      int32_t k = (slot.offset + slot.generated) % FakeTokenizer::kNumWords;
      // logit_bias 100 on a word forces it (as on a real model at temperature 0).
      for (const auto& [id, bias] : slot.request.sampling.logit_bias) {
        const int32_t word = id - FakeTokenizer::kFirstWord;
        if (bias >= 100.0f && word >= 0 && word < FakeTokenizer::kNumWords) k = word;
      }
      if (slot.generated == 0) slot.timing.first_token = Clock::now();
      ++slot.generated;
      tokens_.fetch_add(1);
      progress_ns_.store(Clock::now().time_since_epoch().count());
      for (int32_t l = 0; l < options_.num_layers; ++l) {
        expert_counts_[static_cast<size_t>(l * options_.num_experts + (k + l) % options_.num_experts)].fetch_add(1);
      }
      const int32_t token = FakeTokenizer::kFirstWord + k;
      const auto& stop_ids = slot.request.sampling.stop_token_ids;
      const bool stop_token = std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
      if (!stop_token) slot.text += FakeTokenizer::word(k);  // a stop token adds no text
      runtime::TokenDelta delta;
      delta.token_ids.push_back(token);
      if (const auto& n = slot.request.sampling.logprobs) {
        runtime::GeneratedLogprobs lp;
        lp.sampled = {token, -0.5f};
        for (int32_t i = 0; i < std::min(*n, FakeTokenizer::kNumWords); ++i) {
          lp.top.push_back({FakeTokenizer::kFirstWord + (k + i) % FakeTokenizer::kNumWords, -0.5f - float(i)});
        }
        delta.logprobs.push_back(std::move(lp));
      }
      std::optional<std::string> matched;
      size_t end = slot.text.size();
      for (const auto& s : slot.request.sampling.stop) {
        const size_t from = slot.emitted >= s.size() ? slot.emitted - s.size() + 1 : 0;
        const size_t at = slot.text.find(s, from);
        if (at != std::string::npos && (!matched || at < end)) {
          matched = s;
          end = at;
        }
      }
      const bool eos = !slot.request.sampling.ignore_eos && slot.stop_after >= 0 && slot.generated >= slot.stop_after;
      const bool length = slot.generated >= slot.request.sampling.max_tokens;
      if (!matched && !eos && !stop_token && !length) {
        end = slot.text.size() - held_back(slot.text, slot.request.sampling.stop);
      }
      delta.text = slot.text.substr(slot.emitted, end - slot.emitted);
      slot.emitted = end;
      if (!slot.sink->on_delta(delta)) {
        finish(slot, runtime::FinishReason::kCancelled);  // the consumer is gone or too slow
        slot_ptr.reset();
        continue;
      }
      if (matched || eos || stop_token || length) {
        std::optional<int32_t> stop_token_id;
        if (stop_token && !matched && !eos) stop_token_id = token;  // EOS and stop strings come first, as vLLM
        finish(slot, matched || eos || stop_token ? runtime::FinishReason::kStop : runtime::FinishReason::kLength,
               std::nullopt, matched, stop_token_id);
        slot_ptr.reset();
      }
    }
    std::erase(running, nullptr);
    steps_.fetch_add(1);
    running_count_.store(static_cast<int32_t>(running.size()));
    waiting_count_.store(static_cast<int32_t>(waiting.size()));
    // Pace the steps; a stop or cancel-everything request cuts the wait short.
    next_step = std::max(next_step + options_.step_interval, Clock::now());
    if (options_.step_interval.count() > 0) {
      std::unique_lock lock(mutex_);
      wake_.wait_until(lock, next_step, [&] { return stop_ || cancel_everything_; });
    }
  }
  running_count_.store(0);
  waiting_count_.store(0);
}

runtime::EngineStats FakeEngine::stats() const {
  runtime::EngineStats s;
  s.num_requests_running = running_count_.load();
  s.num_requests_waiting = waiting_count_.load();
  s.kv_blocks_used = kv_used_.load();
  s.kv_blocks_total = options_.kv_blocks_total;
  s.kv_cache_usage = static_cast<double>(s.kv_blocks_used) / static_cast<double>(options_.kv_blocks_total);
  s.prompt_tokens_total = prompt_tokens_.load();
  s.generation_tokens_total = tokens_.load();
  s.num_steps_total = steps_.load();
  if (active_.load() > 0) {
    const auto since = Clock::now().time_since_epoch() - Clock::duration(progress_ns_.load());
    s.seconds_without_progress = std::max(0.0, std::chrono::duration<double>(since).count());
  }
  auto& layers = s.layers[options_.model_name];
  for (int32_t l = 0; l < options_.num_layers; ++l) {
    runtime::EngineStats::LayerStats layer;
    double total = 0;
    double max = 0;
    for (int32_t e = 0; e < options_.num_experts; ++e) {
      const auto v = static_cast<double>(expert_counts_[static_cast<size_t>(l * options_.num_experts + e)].load());
      layer.expert_load.push_back(v);
      total += v;
      max = std::max(max, v);
    }
    const double mean = total / options_.num_experts;
    layer.load_balance = mean > 0 ? max / mean : 1.0;
    layer.a2a_lower_bound_seconds = 1e-4;
    layer.a2a_seconds = 1e-4 * layer.load_balance;
    layers.push_back(std::move(layer));
  }
  s.plan_version = 1;
  return s;
}

std::vector<runtime::ModelInfo> FakeEngine::models() const {
  runtime::ModelInfo m;
  m.name = options_.model_name;
  m.max_context_len = options_.max_context_len;
  m.vocab_size = tokenizer_.vocab_size();
  m.eos_token_ids = tokenizer_.eos_ids();
  m.num_layers = options_.num_layers;
  m.num_experts = options_.num_experts;
  return {m};
}

const runtime::Tokenizer& FakeEngine::tokenizer(const std::string& /*model*/) const { return tokenizer_; }

void FakeEngine::shutdown(std::chrono::milliseconds drain_timeout) {
  std::call_once(shutdown_once_, [&] {
    {
      std::lock_guard lock(mutex_);
      accepting_ = false;
    }
    const auto deadline = Clock::now() + drain_timeout;
    while (active_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    {
      std::lock_guard lock(mutex_);
      cancel_everything_ = active_.load() > 0;
      stop_ = true;
      wake_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  });
}

}  // namespace aurora::testing
