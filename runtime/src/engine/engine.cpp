// EngineImpl: the engine thread and the public Engine API.
//
// submit()/cancel() only validate and enqueue (under mu_); the engine thread drains the inbox at
// the top of every iteration, applies cancellations, runs one step per model (schedule -> execute
// -> sample -> stream), and publishes counters. Sinks are called from the engine thread only, one
// request at a time, and never waited on: a false return cancels the request within the step.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "aurora/runtime/engine.hpp"
#include "engine/engine_builder.hpp"
#include "engine/logits_processors.hpp"
#include "engine/request_validation.hpp"
#include "engine/token_logprobs.hpp"
#include "online/online_controller.hpp"
#include "online/online_engine.hpp"
#include "util/rng.hpp"

namespace aurora::runtime {
namespace {

constexpr float kGreedyTemperature = 1e-5f;  // below this, sampling is greedy (as vLLM)

class EngineImpl final : public Engine {
 public:
  EngineImpl(EngineOptions options, std::unique_ptr<Backend> backend,
             std::vector<std::unique_ptr<ModelInstance>> models, PlacementPolicy policy = propose_deployment)
      : options_(std::move(options)), backend_(std::move(backend)), models_(std::move(models)) {
    sample_stream_ = backend_->create_stream();
    for (auto& mi : models_) {
      instance_by_name_[mi->name] = mi.get();
      if (mi->executor) counters_.plan_version = std::max(counters_.plan_version, mi->executor->placement().version);
      counters_.kv_blocks_total += mi->scheduler->blocks_total();
    }
    start_online(std::move(policy));
    thread_ = std::thread([this] { run(); });
  }
  ~EngineImpl() override { shutdown(std::chrono::milliseconds(0)); }

  Result<RequestId> submit(GenerationRequest request, std::shared_ptr<TokenSink> sink) override;
  void cancel(RequestId id) override;
  EngineStats stats() const override;
  EngineStats progress() const override;
  std::vector<ModelInfo> models() const override;
  const Tokenizer& tokenizer(const std::string& model) const override;
  bool ready() const override { return !stopping_.load(); }
  void shutdown(std::chrono::milliseconds drain_timeout) override;
  PlanSnapshot plan_snapshot() const override;
  Result<void> replan(ReplanAction action) override;

 private:
  struct Live {
    std::unique_ptr<Sequence> seq;
    ModelInstance* instance = nullptr;
  };

  ModelInstance* find_instance(const std::string& name) const;
  void run();
  void step(ModelInstance& mi);
  // step() in three parts, so that colocated models can execute their steps together.
  bool prepare_step(ModelInstance& mi);  // schedule, batch, sampling rows; false: nothing to run
  void complete_step(ModelInstance& mi, const StepResult& result);
  void step_together();
  const float* process_logits(ModelInstance& mi, const float* logits);
  void emit_token(ModelInstance& mi, Sequence& seq, int32_t token, const float* logits_row);
  void finish(ModelInstance& mi, Sequence& seq, FinishReason reason, std::optional<Error> error = std::nullopt,
              std::optional<std::string> stop_string = std::nullopt,
              std::optional<int32_t> stop_token_id = std::nullopt);
  void finish_by_id(RequestId id, FinishReason reason);
  void fail_step(ModelInstance& mi, const std::string& what);
  bool has_work() const;
  void publish_counters();
  int64_t max_waiting_tokens() const {
    // Default: the larger of 32 steps of prefill and 1024 tokens per queued request, so that the
    // bound stops floods of long prompts without refusing traffic the request count admits.
    if (options_.max_waiting_tokens > 0) return options_.max_waiting_tokens;
    return std::max(int64_t{32} * options_.max_num_batched_tokens, int64_t{1024} * options_.max_waiting);
  }
  void start_online(PlacementPolicy policy);
  void online_step(ModelInstance& mi, const StepResult& result, Clock::time_point step_start);

  const EngineOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Stream> sample_stream_;
  std::vector<std::unique_ptr<ModelInstance>> models_;
  std::unordered_map<std::string, ModelInstance*> instance_by_name_;

  // Inbox (submit/cancel -> engine thread).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Live> inbox_;
  std::vector<RequestId> cancels_;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> next_id_{1};
  std::atomic<int32_t> num_queued_{0};         // accepted, never scheduled yet: the max_waiting budget
  std::atomic<int64_t> num_queued_tokens_{0};  // their prompt tokens: the max_waiting_tokens budget
  // Progress (stats().seconds_without_progress): when the engine thread last finished a step, or
  // was handed work while idle; steady-clock nanoseconds.
  std::atomic<int64_t> progress_ns_{Clock::now().time_since_epoch().count()};
  std::atomic<bool> idle_{true};  // no request running or waiting, as last published
  void note_progress() { progress_ns_.store(Clock::now().time_since_epoch().count()); }

  std::mutex shutdown_mu_;
  std::thread thread_;

  // Engine thread only.
  std::unordered_map<RequestId, Live> live_;
  std::vector<Live> incoming_;
  std::vector<RequestId> incoming_cancels_;
  std::vector<RequestId> to_cancel_;

  // Published counters.
  mutable std::mutex stats_mu_;
  EngineStats counters_;

  // Online Aurora (more than one rank): statistics, per-step order, background re-placement.
  std::vector<std::unique_ptr<PlacementHost>> hosts_;
  std::unique_ptr<OnlineController> online_;
};

void EngineImpl::start_online(PlacementPolicy policy) {
  if (options_.num_ranks < 2) return;  // one rank: nothing to order or place
  std::vector<OnlineModel> online_models;
  for (auto& mi : models_) {
    OnlineModel om;
    om.name = mi->name;
    om.config = &mi->model->config;
    om.num_ranks = options_.num_ranks;
    if (mi->executor) {
      hosts_.push_back(make_executor_placement_host(*mi->executor, *backend_));
      om.host = hosts_.back().get();
    } else if (mi->device) {
      om.host = mi->device->placement_host();  // GPU ranks: experts move between GPUs (null: advice only)
    }
    online_models.push_back(om);
  }
  auto wake = [this] {
    { std::lock_guard lock(mu_); }  // the engine thread is waiting or will see the flag
    cv_.notify_one();
  };
  online_ = std::make_unique<OnlineController>(options_.online, std::move(online_models), wake, std::move(policy));
  online_->start();
}

void EngineImpl::online_step(ModelInstance& mi, const StepResult& result, Clock::time_point step_start) {
  size_t index = 0;
  while (models_[index].get() != &mi) ++index;
  online_->on_step(index, result, std::chrono::duration<double>(Clock::now() - step_start).count());
}

PlanSnapshot EngineImpl::plan_snapshot() const { return online_ ? online_->snapshot() : PlanSnapshot{}; }

Result<void> EngineImpl::replan(ReplanAction action) {
  if (!online_) {
    return Error::make(ErrorCode::kUnsupported, "online replanning needs more than one expert-parallel rank (--ranks)");
  }
  return online_->control(action);
}

ModelInstance* EngineImpl::find_instance(const std::string& name) const {
  if (name.empty()) return models_.front().get();
  auto it = instance_by_name_.find(name);
  return it == instance_by_name_.end() ? nullptr : it->second;
}

Result<RequestId> EngineImpl::submit(GenerationRequest request, std::shared_ptr<TokenSink> sink) {
  if (stopping_.load()) return Error::make(ErrorCode::kUnavailable, "the engine is shutting down");
  if (!sink) return Error::invalid("sink", "must not be null");
  ModelInstance* mi = find_instance(request.model);
  if (!mi) {
    std::string served;
    for (const auto& m : models_) served += (served.empty() ? "" : ", ") + m->name;
    return Error::invalid("model", "unknown model \"" + request.model + "\" (serving: " + served + ")");
  }
  auto valid = validate_request(request, *mi);
  if (!valid) return valid.error();

  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_.fetch_add(1);
  seq->timing.arrived = Clock::now();
  seq->tokens = request.prompt_ids;
  seq->tokens.reserve(request.prompt_ids.size() + static_cast<size_t>(request.sampling.max_tokens));
  seq->num_prompt_tokens = static_cast<int32_t>(request.prompt_ids.size());
  seq->seed = request.sampling.seed ? *request.sampling.seed : mix_seed(options_.seed, seq->id);
  seq->decoder = std::make_unique<IncrementalDecoder>(*mi->tokenizer, /*skip_special=*/true);
  seq->stop = StopMatcher(request.sampling.stop);
  if (needs_logits_processing(request.sampling)) seq->history.start(request.prompt_ids, request.sampling);
  seq->request = std::move(request);
  seq->sink = std::move(sink);
  const RequestId id = seq->id;
  {
    std::lock_guard lock(mu_);
    if (stopping_.load()) return Error::make(ErrorCode::kUnavailable, "the engine is shutting down");
    if (num_queued_.load() >= options_.max_waiting) {
      return Error::make(
          ErrorCode::kResourceExhausted,
          "the waiting queue is full (" + std::to_string(options_.max_waiting) + " requests); retry later");
    }
    // Bound the queued prefill work too (a few long prompts can hold more than many short ones).
    const int64_t queued_tokens = num_queued_tokens_.load();
    const int64_t max_tokens = max_waiting_tokens();
    if (queued_tokens > 0 && queued_tokens + seq->num_prompt_tokens > max_tokens) {
      return Error::make(ErrorCode::kResourceExhausted,
                         "the waiting queue is full (" + std::to_string(queued_tokens) + " prompt tokens queued, " +
                             std::to_string(seq->num_prompt_tokens) + " more requested, max_waiting_tokens " +
                             std::to_string(max_tokens) + "); retry later");
    }
    ++num_queued_;
    num_queued_tokens_ += seq->num_prompt_tokens;
    if (inbox_.empty() && idle_.load()) note_progress();  // an idle engine has not been stalling
    inbox_.push_back(Live{std::move(seq), mi});
  }
  cv_.notify_one();
  return id;
}

void EngineImpl::cancel(RequestId id) {
  {
    std::lock_guard lock(mu_);
    cancels_.push_back(id);
  }
  cv_.notify_one();
}

bool EngineImpl::has_work() const {
  for (const auto& mi : models_) {
    if (mi->scheduler->has_work()) return true;
  }
  return false;
}

void EngineImpl::run() {
  while (true) {
    bool stopping = false;
    std::chrono::steady_clock::time_point deadline;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] {
        return !inbox_.empty() || !cancels_.empty() || stopping_.load() || has_work() ||
               (online_ && online_->boundary_work());
      });
      incoming_.swap(inbox_);
      incoming_cancels_.swap(cancels_);
      stopping = stopping_.load();
      deadline = drain_deadline_;
    }
    for (auto& live : incoming_) {
      Sequence* seq = live.seq.get();
      live.instance->scheduler->add(seq);
      live_.emplace(seq->id, std::move(live));
    }
    incoming_.clear();
    for (RequestId id : incoming_cancels_) finish_by_id(id, FinishReason::kCancelled);
    incoming_cancels_.clear();
    if (stopping && std::chrono::steady_clock::now() >= deadline) {
      // Drain time is over: cancel firmly.
      to_cancel_.clear();
      for (const auto& [id, live] : live_) to_cancel_.push_back(id);
      std::sort(to_cancel_.begin(), to_cancel_.end());
      for (RequestId id : to_cancel_) finish_by_id(id, FinishReason::kCancelled);
    }
    if (stopping && !has_work()) break;
    if (online_) {
      try {
        online_->at_step_boundary();  // order templates, migrated layers: between steps only
      } catch (const std::exception& e) {
        std::fprintf(stderr, "aurora: online re-planning at a step boundary failed: %s\n", e.what());
      }
    }
    publish_counters();  // requests just taken from the inbox count as waiting while the step runs
    if (models_.front()->together) {
      step_together();
    } else {
      for (auto& mi : models_) {
        if (!mi->scheduler->has_work()) continue;
        try {
          step(*mi);
        } catch (const std::exception& e) {
          // A bug (AURORA_CHECK) outside the executor: fail this step's requests, keep serving.
          fail_step(*mi, e.what());
        }
      }
    }
    publish_counters();
  }
  publish_counters();
}

bool EngineImpl::prepare_step(ModelInstance& mi) {
  mi.step_start = Clock::now();
  const auto& chunks = mi.scheduler->schedule();
  if (!mi.scheduler->preempted().empty()) {
    std::lock_guard lock(stats_mu_);
    counters_.num_preemptions_total += static_cast<int64_t>(mi.scheduler->preempted().size());
  }
  if (chunks.empty()) return false;
  const auto now = Clock::now();
  mi.batch.chunks.clear();
  mi.sampled_chunks.clear();
  int32_t logits_rows = 0;
  for (const auto& ch : chunks) {
    Sequence* seq = ch.seq;
    if (!seq->first_scheduled) {
      seq->first_scheduled = true;
      seq->timing.first_scheduled = now;
      --num_queued_;
      num_queued_tokens_ -= seq->num_prompt_tokens;
    }
    SequenceChunk c;
    c.rank = seq->rank;
    c.tokens = seq->tokens.data() + ch.start;
    c.num_tokens = ch.num_tokens;
    c.start_position = ch.start;
    c.block_table = seq->block_table.data();
    c.num_blocks = static_cast<int32_t>(seq->block_table.size());
    c.logits = ch.sample ? LogitsMode::kLast : LogitsMode::kNone;
    c.logits_row = ch.sample ? logits_rows++ : -1;
    mi.batch.chunks.push_back(c);
    if (ch.sample) mi.sampled_chunks.push_back(ch);
  }
  mi.batch.num_logits_rows = logits_rows;

  // Sampling rows: one per sequence that reaches the end of its known tokens.
  mi.sampling_rows.clear();
  bool wants_logits = false;
  for (const auto& ch : mi.sampled_chunks) {
    const Sequence& seq = *ch.seq;
    const auto& sp = seq.request.sampling;
    kernels::SamplingRow row;
    row.temperature = sp.temperature < kGreedyTemperature ? 0.0f : sp.temperature;
    row.top_p = sp.top_p;
    row.top_k = sp.top_k < 0 ? 0 : sp.top_k;
    // The draw for the n-th generated token depends only on (seed, n): the same whatever the batch,
    // the rank count, or a preemption in between.
    Rng rng(mix_seed(seq.seed, static_cast<uint64_t>(seq.num_generated())));
    row.uniform = rng.uniform();
    mi.sampling_rows.push_back(row);
    wants_logits = wants_logits || (seq.request.return_prompt_logits && seq.num_generated() == 0) ||
                   sp.logprobs.has_value() || needs_logits_processing(sp);
  }
  // A device runner samples on the device and returns only tokens, unless a request wants its
  // logits back (or logprobs computed from them) or processed (penalties, logit_bias, ...); then
  // the logits come to the host and the CPU twin samples them, drawing the same tokens.
  mi.sample_on_device = mi.device && !wants_logits;
  return true;
}

void EngineImpl::step(ModelInstance& mi) {
  if (!prepare_step(mi)) return;
  const StepResult* result = nullptr;
  try {
    if (mi.device) {
      result = &mi.device->execute(mi.batch, mi.sample_on_device ? mi.sampling_rows.data() : nullptr,
                                   mi.sampled_tokens.data());
    } else {
      result = &mi.executor->execute(mi.batch);
    }
  } catch (const std::exception& e) {
    fail_step(mi, e.what());
    return;
  }
  complete_step(mi, *result);
}

// Colocated models: both steps are prepared, executed together on the shared GPUs (their compute
// and all-to-alls interleave), then completed one after the other.
void EngineImpl::step_together() {
  std::vector<DeviceStep> steps(models_.size());
  std::vector<bool> running(models_.size(), false);
  bool any = false;
  for (size_t m = 0; m < models_.size(); ++m) {
    ModelInstance& mi = *models_[m];
    if (!mi.scheduler->has_work()) continue;
    try {
      if (!prepare_step(mi)) continue;
    } catch (const std::exception& e) {
      fail_step(mi, e.what());
      continue;
    }
    steps[m] = DeviceStep{&mi.batch, mi.sample_on_device ? mi.sampling_rows.data() : nullptr, mi.sampled_tokens.data()};
    running[m] = true;
    any = true;
  }
  if (!any) return;
  std::vector<const StepResult*> results;
  try {
    results = models_.front()->together->execute_together(steps);
  } catch (const std::exception& e) {
    for (size_t m = 0; m < models_.size(); ++m) {
      if (running[m]) fail_step(*models_[m], e.what());
    }
    return;
  }
  for (size_t m = 0; m < models_.size(); ++m) {
    if (!running[m]) continue;
    try {
      complete_step(*models_[m], *results[m]);
    } catch (const std::exception& e) {
      fail_step(*models_[m], e.what());
    }
  }
}

void EngineImpl::complete_step(ModelInstance& mi, const StepResult& step_result) {
  const StepResult* result = &step_result;
  const bool sample_on_device = mi.sample_on_device;
  const auto& chunks = mi.scheduler->last_scheduled();
  mi.routing->record_step(result->routed_tokens);
  if (online_) online_step(mi, *result, mi.step_start);
  int64_t prompt_tokens = 0;
  for (const auto& ch : chunks) {
    Sequence* seq = ch.seq;
    seq->num_computed += ch.num_tokens;
    if (!seq->prompt_counted && seq->num_computed >= seq->num_prompt_tokens) {
      seq->prompt_counted = true;
      prompt_tokens += seq->num_prompt_tokens;
    }
  }

  const int32_t V = mi.model->config.vocab_size;
  if (!mi.sampling_rows.empty() && !sample_on_device) {
    kernels::SampleParams sp;
    sp.logits = process_logits(mi, result->logits);
    sp.rows = mi.sampling_rows.data();
    sp.out_tokens = mi.sampled_tokens.data();
    sp.num_rows = static_cast<int32_t>(mi.sampling_rows.size());
    sp.vocab_size = V;
    if (mi.device) {  // host logits from the device: the CPU twin samples them
      mi.host_sampling_workspace.resize(kernels::cpu::sampling_workspace_bytes(V));
      kernels::cpu::sample(sp, mi.host_sampling_workspace.data(), mi.host_sampling_workspace.size());
    } else {
      backend_->sample(sp, mi.sampling_workspace.get(), mi.sampling_workspace.bytes(), *sample_stream_);
      backend_->synchronize(*sample_stream_);
    }
  }
  {
    std::lock_guard lock(stats_mu_);
    counters_.prompt_tokens_total += prompt_tokens;
    counters_.generation_tokens_total += static_cast<int64_t>(mi.sampled_chunks.size());
    ++counters_.num_steps_total;
    counters_.consecutive_failed_steps = 0;
    mi.last_exchange = result->exchange;
  }
  note_progress();
  for (size_t i = 0; i < mi.sampled_chunks.size(); ++i) {
    emit_token(mi, *mi.sampled_chunks[i].seq, mi.sampled_tokens[i],
               result->logits ? result->logits + i * static_cast<size_t>(V) : nullptr);
  }
}

// The logits the sampler draws from: `logits` itself, or a copy with the logits processors applied
// to the rows whose requests ask for them (the raw rows stay for logprobs and prompt_logits).
const float* EngineImpl::process_logits(ModelInstance& mi, const float* logits) {
  const int32_t V = mi.model->config.vocab_size;
  bool any = false;
  for (const auto& ch : mi.sampled_chunks) any = any || needs_logits_processing(ch.seq->request.sampling);
  if (!any) return logits;
  const size_t row_floats = static_cast<size_t>(V);
  mi.processed_logits.assign(logits, logits + mi.sampled_chunks.size() * row_floats);
  for (size_t i = 0; i < mi.sampled_chunks.size(); ++i) {
    const Sequence& seq = *mi.sampled_chunks[i].seq;
    const auto& params = seq.request.sampling;
    if (!needs_logits_processing(params)) continue;
    apply_logits_processors(mi.processed_logits.data() + i * row_floats, V, params, seq.history, mi.eos_ids);
  }
  return mi.processed_logits.data();
}

void EngineImpl::emit_token(ModelInstance& mi, Sequence& seq, int32_t token, const float* logits_row) {
  const auto& sp = seq.request.sampling;
  if (seq.num_generated() == 0) {
    seq.timing.first_token = Clock::now();
    if (seq.request.return_prompt_logits && logits_row) {
      seq.prompt_logits.assign(logits_row, logits_row + mi.model->config.vocab_size);
    }
  }
  seq.tokens.push_back(token);
  if (needs_logits_processing(sp)) seq.history.add_generated(token);
  TokenDelta delta;
  delta.token_ids.push_back(token);
  if (sp.logprobs && logits_row) {
    delta.logprobs.push_back(compute_token_logprobs(logits_row, mi.model->config.vocab_size, token, *sp.logprobs));
  }
  std::optional<FinishReason> reason;
  std::optional<std::string> stop_string;
  auto add_text = [&](std::string_view text) {
    if (reason) return;
    // vLLM: no stop string ends within the first min_tokens tokens.
    auto r = seq.stop.push(text, seq.num_generated() > sp.min_tokens);
    delta.text += r.emit;
    if (r.matched) {
      reason = FinishReason::kStop;
      stop_string = seq.stop.stop(*r.matched);
    }
  };
  auto end_text = [&](FinishReason why) {
    add_text(seq.decoder->flush());
    if (!reason) {
      reason = why;
      delta.text += seq.stop.flush();
    }
  };
  // EOS is checked first, as vLLM does: a token that is both EOS and a stop_token_ids entry reports
  // no stop token.
  const bool eos = !sp.ignore_eos && mi.is_eos(token);
  const bool stop_token =
      eos || std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), token) != sp.stop_token_ids.end();
  std::optional<int32_t> stop_token_id;
  if (stop_token) {
    end_text(FinishReason::kStop);  // the stop token itself adds no text
    // A stop string completed by the flushed text ended the choice first.
    if (!eos && !stop_string) stop_token_id = token;
  } else {
    add_text(seq.decoder->push(token));
    if (!reason &&
        (seq.num_generated() >= sp.max_tokens || static_cast<int32_t>(seq.tokens.size()) >= mi.max_context)) {
      end_text(FinishReason::kLength);
    }
  }
  bool accepted = false;
  try {
    accepted = seq.sink->on_delta(delta);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora: request %llu: sink threw: %s\n", static_cast<unsigned long long>(seq.id), e.what());
  }
  if (!accepted) reason = FinishReason::kCancelled;  // the consumer is gone or too slow
  if (reason) finish(mi, seq, *reason, std::nullopt, std::move(stop_string), stop_token_id);
}

void EngineImpl::finish(ModelInstance& mi, Sequence& seq, FinishReason reason, std::optional<Error> error,
                        std::optional<std::string> stop_string, std::optional<int32_t> stop_token_id) {
  const bool never_scheduled = !seq.first_scheduled;
  mi.scheduler->remove(&seq);  // frees the KV blocks now
  if (never_scheduled) {
    --num_queued_;
    num_queued_tokens_ -= seq.num_prompt_tokens;
  }
  Completion c;
  c.reason = reason;
  c.usage.prompt_tokens = seq.num_prompt_tokens;
  c.usage.completion_tokens = seq.num_generated();
  seq.timing.finished = Clock::now();
  c.timing = seq.timing;
  c.error = std::move(error);
  c.stop_string = std::move(stop_string);
  c.stop_token_id = stop_token_id;
  c.prompt_logits = std::move(seq.prompt_logits);
  publish_counters();  // a client that sees on_finish then stats() sees its blocks freed
  try {
    seq.sink->on_finish(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora: request %llu: sink threw in on_finish: %s\n", static_cast<unsigned long long>(seq.id),
                 e.what());
  }
  live_.erase(seq.id);  // destroys seq
}

void EngineImpl::finish_by_id(RequestId id, FinishReason reason) {
  auto it = live_.find(id);
  if (it == live_.end()) return;  // unknown or already finished
  finish(*it->second.instance, *it->second.seq, reason);
}

void EngineImpl::fail_step(ModelInstance& mi, const std::string& what) {
  std::fprintf(stderr, "aurora: step of %s failed: %s\n", mi.name.c_str(), what.c_str());
  {
    std::lock_guard lock(stats_mu_);
    ++counters_.failed_steps_total;
    ++counters_.consecutive_failed_steps;
  }
  note_progress();  // the thread is alive; failing steps show in consecutive_failed_steps
  to_cancel_.clear();
  for (const auto& ch : mi.scheduler->last_scheduled()) to_cancel_.push_back(ch.seq->id);
  for (RequestId id : to_cancel_) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    finish(mi, *it->second.seq, FinishReason::kError, Error::make(ErrorCode::kInternal, "engine step failed: " + what));
  }
}

void EngineImpl::publish_counters() {
  int32_t running = 0, waiting = 0;
  int64_t used = 0, total = 0;
  for (const auto& mi : models_) {
    running += mi->scheduler->num_running();
    waiting += mi->scheduler->num_waiting();
    used += mi->scheduler->blocks_used();
    total += mi->scheduler->blocks_total();
  }
  idle_.store(running == 0 && waiting == 0);
  std::lock_guard lock(stats_mu_);
  counters_.num_requests_running = running;
  counters_.num_requests_waiting = waiting;
  counters_.kv_blocks_used = used;
  counters_.kv_blocks_total = total;
  counters_.kv_cache_usage = total ? static_cast<double>(used) / static_cast<double>(total) : 0.0;
}

EngineStats EngineImpl::progress() const {
  EngineStats s;
  {
    std::lock_guard lock(stats_mu_);
    s.num_requests_running = counters_.num_requests_running;
    s.num_requests_waiting = counters_.num_requests_waiting;
    s.consecutive_failed_steps = counters_.consecutive_failed_steps;
  }
  {
    std::lock_guard lock(mu_);  // accepted but not yet seen by the engine thread
    s.num_requests_waiting += static_cast<int32_t>(inbox_.size());
  }
  if (s.num_requests_running + s.num_requests_waiting > 0) {
    const auto since = Clock::now().time_since_epoch() - Clock::duration(progress_ns_.load());
    s.seconds_without_progress = std::max(0.0, std::chrono::duration<double>(since).count());
  }
  return s;
}

EngineStats EngineImpl::stats() const {
  EngineStats s;
  std::vector<std::vector<LayerExchangeCost>> exchange;
  {
    std::lock_guard lock(stats_mu_);
    s = counters_;
    for (const auto& mi : models_) exchange.push_back(mi->last_exchange);
  }
  {
    std::lock_guard lock(mu_);  // accepted but not yet seen by the engine thread
    s.num_requests_waiting += static_cast<int32_t>(inbox_.size());
  }
  const EngineStats p = progress();
  s.seconds_without_progress = p.seconds_without_progress;
  for (size_t m = 0; m < models_.size(); ++m) {
    const auto& mi = *models_[m];
    const auto snap = mi.routing->snapshot();
    auto& layers = s.layers[mi.name];
    layers.resize(snap.expert_load.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const bool moe = mi.model->config.layer_is_moe[l];
      if (moe) {
        layers[l].expert_load.assign(snap.expert_load[l].begin(), snap.expert_load[l].end());
        layers[l].load_balance = RoutingStats::load_balance(snap.expert_load[l]);
      }
      layers[l].a2a_seconds = exchange[m][l].estimated_seconds;
      layers[l].a2a_lower_bound_seconds = exchange[m][l].lower_bound_seconds;
      layers[l].a2a_measured_seconds = exchange[m][l].measured_seconds;
    }
  }
  if (online_) {
    s.plan_version = online_->plan_version();
    s.expert_migrations_total = online_->migrations_total();
  }
  return s;
}

std::vector<ModelInfo> EngineImpl::models() const {
  std::vector<ModelInfo> out;
  for (const auto& mi : models_) out.push_back(mi->info);
  return out;
}

const Tokenizer& EngineImpl::tokenizer(const std::string& model) const {
  ModelInstance* mi = find_instance(model);
  return *(mi ? mi : models_.front().get())->tokenizer;
}

void EngineImpl::shutdown(std::chrono::milliseconds drain_timeout) {
  std::lock_guard guard(shutdown_mu_);
  {
    std::lock_guard lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
    if (!stopping_.load() || deadline < drain_deadline_) drain_deadline_ = deadline;
    stopping_ = true;
  }
  cv_.notify_one();
  // Once stopping, the engine thread never blocks: it steps until no work is left or the
  // deadline passes (then cancels the rest), and exits.
  if (thread_.joinable()) thread_.join();
  if (online_) online_->stop();  // after the engine thread: no step boundary will come any more
  // Requests submitted while the thread was stopping (none can be: submit checks stopping_)
  // and anything left in the inbox get their on_finish.
  std::vector<Live> left;
  {
    std::lock_guard lock(mu_);
    left.swap(inbox_);
  }
  for (auto& live : left) {
    Completion c;
    c.reason = FinishReason::kCancelled;
    c.usage.prompt_tokens = live.seq->num_prompt_tokens;
    c.timing = live.seq->timing;
    c.timing.finished = Clock::now();
    live.seq->sink->on_finish(c);
  }
}

}  // namespace

Result<std::unique_ptr<Engine>> create_engine(const EngineOptions& options) {
  try {
    return create_engine_unchecked(options);
  } catch (const std::bad_alloc&) {
    return Error::make(ErrorCode::kResourceExhausted,
                       "out of memory while building the engine (reduce kv_cache_tokens, max_num_batched_tokens or "
                       "max_num_seqs)");
  } catch (const std::exception& e) {
    return Error::make(ErrorCode::kInternal, std::string("building the engine failed: ") + e.what());
  }
}

Result<std::unique_ptr<Engine>> create_engine_unchecked(const EngineOptions& options) {
  return create_engine_with_policy(options, propose_deployment);
}

Result<std::unique_ptr<Engine>> create_engine_with_policy(const EngineOptions& options, PlacementPolicy policy) {
  auto valid = validate_engine_options(options);
  if (!valid) return valid.error();
  auto online = validate_online_options(options.online, options.num_ranks);
  if (!online) return online.error();
  auto backend = make_backend(options.device);
  if (!backend) return backend.error();
  auto emulation = validate_rank_emulation(options.emulation, options.num_ranks, (*backend)->is_host_memory());
  if (!emulation) return emulation.error();
  auto models = build_model_instances(options, **backend);
  if (!models) return models.error();
  return std::unique_ptr<Engine>(new EngineImpl(options, std::move(*backend), std::move(*models), std::move(policy)));
}

Result<std::unique_ptr<Engine>> create_engine_with_models(const EngineOptions& options,
                                                          std::vector<std::shared_ptr<const Model>> models) {
  auto valid = validate_engine_options(options);
  if (!valid) return valid.error();
  auto online = validate_online_options(options.online, options.num_ranks);
  if (!online) return online.error();
  if (models.empty()) return Error::invalid("models", "must not be empty");
  auto backend = make_backend(options.device);
  if (!backend) return backend.error();
  auto emulation = validate_rank_emulation(options.emulation, options.num_ranks, (*backend)->is_host_memory());
  if (!emulation) return emulation.error();
  auto instances = build_instances_for(options, **backend, std::move(models));
  if (!instances) return instances.error();
  return std::unique_ptr<Engine>(new EngineImpl(options, std::move(*backend), std::move(*instances)));
}

}  // namespace aurora::runtime
