#include "generation.hpp"

#include <cstdio>

#include <boost/json/serialize.hpp>
#include <chrono>

#include "aurora/config/protocol/sse.hpp"
#include "aurora/config/protocol/ws_messages.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "logprobs.hpp"
#include "routes.hpp"

namespace aurora::server {

using protocol::ApiError;
using runtime::Clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

protocol::StopReason stop_reason_of(const runtime::Completion& c) {
  if (c.stop_string) return *c.stop_string;
  if (c.stop_token_id) return *c.stop_token_id;
  return std::monostate{};
}

// The engine's view of one sequence: pushes into the session's channel and records the latency
// histograms (called on an engine thread; never blocks).
class ChannelSink final : public runtime::TokenSink {
 public:
  ChannelSink(std::shared_ptr<TokenChannel> channel, uint32_t tag, ModelMetrics* metrics, Clock::time_point arrival)
      : channel_(std::move(channel)), tag_(tag), metrics_(metrics), arrival_(arrival) {}

  bool on_delta(const runtime::TokenDelta& delta) override {
    const auto num_tokens = static_cast<int32_t>(delta.token_ids.size());
    if (num_tokens > 0) {
      const auto now = Clock::now();
      if (!seen_first_) {
        metrics_->time_to_first_token.observe(seconds_between(arrival_, now));
        seen_first_ = true;
      } else {
        metrics_->inter_token_latency.observe(seconds_between(last_token_, now));
      }
      last_token_ = now;
      metrics_->generation_tokens.fetch_add(static_cast<uint64_t>(num_tokens), std::memory_order_relaxed);
    }
    return channel_->push_delta(tag_, delta.text, num_tokens, delta.logprobs);
  }

  void on_finish(const runtime::Completion& completion) override {
    const auto now = Clock::now();
    metrics_->e2e_request_latency.observe(seconds_between(arrival_, now));
    const auto& t = completion.timing;
    if (t.first_scheduled != Clock::time_point{} && t.arrived != Clock::time_point{} &&
        t.first_scheduled >= t.arrived) {
      metrics_->request_queue_time.observe(seconds_between(t.arrived, t.first_scheduled));
    }
    metrics_->prompt_tokens.fetch_add(static_cast<uint64_t>(std::max(0, completion.usage.prompt_tokens)),
                                      std::memory_order_relaxed);
    size_t reason = 3;
    switch (completion.reason) {
      case runtime::FinishReason::kStop: reason = 0; break;
      case runtime::FinishReason::kLength: reason = 1; break;
      case runtime::FinishReason::kCancelled: reason = 2; break;
      case runtime::FinishReason::kError: reason = 3; break;
    }
    metrics_->request_success[reason].fetch_add(1, std::memory_order_relaxed);
    channel_->push_finish(tag_, completion);
  }

 private:
  std::shared_ptr<TokenChannel> channel_;
  uint32_t tag_;
  ModelMetrics* metrics_;
  Clock::time_point arrival_;
  Clock::time_point last_token_;
  bool seen_first_ = false;
};

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

ApiError context_error(std::string message, std::string param) {
  return ApiError::invalid_request(std::move(message), std::move(param), "context_length_exceeded");
}

struct PromptIds {
  std::vector<int32_t> ids;
  std::string field;  // for errors: "messages", "prompt", "prompt[2]"
};

Expected<GenerationPlan> build_plan(protocol::Endpoint endpoint, const runtime::ModelInfo& model,
                                    std::vector<PromptIds> prompts, const protocol::SamplingFields& s,
                                    const RequestInfo& info) {
  const bool chat = endpoint == protocol::Endpoint::kChat;
  const int64_t context = model.max_context_len;
  for (size_t i = 0; i < s.stop_token_ids.size(); ++i) {
    if (s.stop_token_ids[i] >= model.vocab_size) {
      return ApiError::invalid_request("stop_token_ids[" + std::to_string(i) + "]: token id " +
                                           std::to_string(s.stop_token_ids[i]) + " is not in the vocabulary (size " +
                                           std::to_string(model.vocab_size) + ")",
                                       "stop_token_ids");
    }
  }
  for (const auto& [id, bias] : s.logit_bias) {
    if (id >= model.vocab_size) {
      return ApiError::invalid_request("logit_bias: token id " + std::to_string(id) +
                                           " is not in the vocabulary (size " + std::to_string(model.vocab_size) + ")",
                                       "logit_bias");
    }
  }
  GenerationPlan plan;
  plan.endpoint = endpoint;
  plan.model = model.name;
  plan.request_id = info.request_id;
  plan.response_id = (chat ? "chatcmpl-" : "cmpl-") + info.request_id;
  plan.created = unix_seconds();
  plan.arrival = info.arrival;
  plan.num_choices = static_cast<int32_t>(prompts.size()) * s.n;
  plan.include_usage = s.stream && s.include_usage;
  plan.continuous_usage = s.stream && s.continuous_usage_stats;
  plan.logprobs = s.logprobs.has_value();
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto& prompt = prompts[p];
    const auto num_prompt = static_cast<int64_t>(prompt.ids.size());
    if (num_prompt == 0) return ApiError::invalid_request(prompt.field + ": the prompt is empty", prompt.field);
    if (num_prompt >= context) {
      return context_error("This model's maximum context length is " + std::to_string(context) +
                               " tokens. However, your prompt has " + std::to_string(num_prompt) +
                               " tokens, which leaves no room for the completion.",
                           prompt.field);
    }
    int64_t max_tokens = 0;
    if (s.max_tokens) {
      max_tokens = *s.max_tokens;
      if (num_prompt + max_tokens > context) {
        return context_error("This model's maximum context length is " + std::to_string(context) +
                                 " tokens. However, you requested " + std::to_string(num_prompt + max_tokens) +
                                 " tokens (" + std::to_string(num_prompt) + " in the prompt, " +
                                 std::to_string(max_tokens) + " for the completion).",
                             s.max_tokens_field);
      }
    } else {
      // OpenAI and vLLM: chat fills the context; completions default to 16 tokens.
      max_tokens = chat ? context - num_prompt : std::min<int64_t>(16, context - num_prompt);
    }
    if (s.min_tokens > max_tokens) {  // max_tokens was left to its default
      return ApiError::invalid_request("min_tokens: must be <= max_tokens (" + std::to_string(max_tokens) +
                                           " here), got " + std::to_string(s.min_tokens),
                                       "min_tokens");
    }
    plan.prompt_tokens += num_prompt;
    for (int32_t j = 0; j < s.n; ++j) {
      SequencePlan seq;
      seq.choice_index = static_cast<int32_t>(p) * s.n + j;
      auto& r = seq.request;
      r.model = model.name;
      r.prompt_ids = prompt.ids;
      r.external_id = plan.num_choices > 1 ? info.request_id + "-" + std::to_string(seq.choice_index) : info.request_id;
      r.sampling.temperature = s.temperature;
      r.sampling.top_p = s.top_p;
      r.sampling.top_k = s.top_k;
      // n > 1 with a seed: distinct but reproducible choices; each prompt of a batch gets the same
      // seeds, as if it had been sent alone.
      if (s.seed) r.sampling.seed = *s.seed + static_cast<uint64_t>(j);
      r.sampling.max_tokens = static_cast<int32_t>(max_tokens);
      r.sampling.stop = s.stop;
      r.sampling.stop_token_ids = s.stop_token_ids;
      r.sampling.ignore_eos = s.ignore_eos;
      r.sampling.logprobs = s.logprobs;
      r.sampling.presence_penalty = s.presence_penalty;
      r.sampling.frequency_penalty = s.frequency_penalty;
      r.sampling.repetition_penalty = s.repetition_penalty;
      r.sampling.min_p = s.min_p;
      r.sampling.min_tokens = s.min_tokens;
      r.sampling.logit_bias = s.logit_bias;
      plan.sequences.push_back(std::move(seq));
    }
  }
  return plan;
}

}  // namespace

Expected<runtime::ModelInfo> resolve_model(const runtime::Engine& engine, const std::string& name) {
  auto models = engine.models();
  if (models.empty()) return ApiError::unavailable("no model is loaded", "model_loading", 1);
  if (name.empty()) return models.front();
  for (auto& m : models) {
    if (m.name == name) return m;
  }
  // Never echo more than a short, printable prefix of the name.
  std::string shown = name.substr(0, 64);
  for (auto& c : shown) c = (c < 0x20 || c == 0x7f) ? '?' : c;
  return ApiError::not_found("The model `" + shown + "` does not exist.", "model_not_found");
}

Expected<GenerationPlan> plan_chat(const protocol::ChatRequest& request, const runtime::Engine& engine,
                                   const RequestInfo& info) {
  auto model = resolve_model(engine, request.model);
  if (!model.ok()) return model.error();
  const runtime::Tokenizer& tokenizer = engine.tokenizer(model.value().name);
  std::vector<runtime::ChatMessage> messages;
  messages.reserve(request.messages.size());
  for (const auto& m : request.messages) messages.push_back({m.role, m.content});
  auto rendered = tokenizer.apply_chat_template(messages, request.add_generation_prompt);
  if (!rendered.ok()) {
    ApiError e = ApiError::from(rendered.error());
    if (e.param.empty()) e.param = "messages";
    return e;
  }
  std::vector<PromptIds> prompts;
  prompts.push_back({tokenizer.encode(*rendered, /*add_special=*/false), "messages"});
  return build_plan(protocol::Endpoint::kChat, model.value(), std::move(prompts), request.sampling, info);
}

Expected<GenerationPlan> plan_completion(const protocol::CompletionRequest& request, const runtime::Engine& engine,
                                         const RequestInfo& info) {
  auto model = resolve_model(engine, request.model);
  if (!model.ok()) return model.error();
  const runtime::Tokenizer& tokenizer = engine.tokenizer(model.value().name);
  std::vector<PromptIds> prompts;
  for (size_t i = 0; i < request.prompts.size(); ++i) {
    const auto& p = request.prompts[i];
    const std::string field = request.prompts.size() == 1 ? "prompt" : "prompt[" + std::to_string(i) + "]";
    if (p.is_tokens) {
      for (int32_t id : p.token_ids) {
        if (id >= model.value().vocab_size) {
          return ApiError::invalid_request(field + ": token id " + std::to_string(id) +
                                               " is not in the vocabulary (size " +
                                               std::to_string(model.value().vocab_size) + ")",
                                           field);
        }
      }
      prompts.push_back({p.token_ids, field});
    } else {
      prompts.push_back({tokenizer.encode(p.text, /*add_special=*/true), field});
    }
  }
  return build_plan(protocol::Endpoint::kCompletion, model.value(), std::move(prompts), request.sampling, info);
}

Generation::Generation(GenerationPlan plan, Wire wire, std::string ws_id_json)
    : plan_(std::move(plan)),
      wire_(wire),
      ws_id_json_(std::move(ws_id_json)),
      encoder_(plan_.endpoint, plan_.response_id, plan_.model, plan_.created, plan_.include_usage),
      seqs_(plan_.sequences.size()) {}

std::optional<ApiError> Generation::submit(const std::shared_ptr<runtime::Engine>& engine,
                                           const std::shared_ptr<TokenChannel>& channel, uint32_t first_tag,
                                           Metrics& metrics, const config::ServerConfig& config) {
  engine_ = engine;
  first_tag_ = first_tag;
  ModelMetrics* model_metrics = metrics.model(plan_.model);
  for (size_t i = 0; i < plan_.sequences.size(); ++i) {
    auto sink =
        std::make_shared<ChannelSink>(channel, first_tag + static_cast<uint32_t>(i), model_metrics, plan_.arrival);
    auto id = engine->submit(plan_.sequences[i].request, std::move(sink));
    if (id.ok()) {
      ids_.push_back(*id);
      continue;
    }
    for (auto submitted : ids_) engine->cancel(submitted);
    finished_ = true;
    const Error& error = id.error();
    if (error.code == ErrorCode::kResourceExhausted) {
      metrics.count_rejection(RejectReason::kQueueFull);
      // The engine's reason names the limit that was hit (requests or queued prompt tokens).
      return ApiError::overloaded("The server is at capacity: " + error.message + ".", config.overload_status,
                                  config.retry_after_s);
    }
    if (error.code == ErrorCode::kUnavailable) {
      metrics.count_rejection(RejectReason::kDraining);
      return ApiError::unavailable("The server is not accepting requests: " + error.message, "service_unavailable",
                                   config.retry_after_s);
    }
    return ApiError::from(error);
  }
  submitted_ = true;
  return std::nullopt;
}

void Generation::cancel(CancelCause cause) {
  if (cancel_cause_ == CancelCause::kNone) cancel_cause_ = cause;
  if (!engine_) return;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (!seqs_[i].ended) engine_->cancel(ids_[i]);
  }
}

void Generation::stall(double seconds, WireOutput& out) {
  if (finished_) return;
  char text[200];
  std::snprintf(text, sizeof text,
                "No token for this request in %.0f s: the engine is stalled or overloaded; the request was cancelled.",
                seconds);
  fail(ApiError::unavailable(text, "no_progress", 0), out);
}

void Generation::emit(WireOutput& out, const std::string& chunk_json) {
  if (wire_ == Wire::kSse) {
    protocol::append_sse_event(out.bytes, chunk_json);
  } else if (wire_ == Wire::kWs) {
    out.messages.push_back(protocol::ws_chunk_event(ws_id_json_, chunk_json));
  }
}

void Generation::start(WireOutput& out) {
  if (started_) return;
  started_ = true;
  if (plan_.endpoint != protocol::Endpoint::kChat) return;
  const protocol::TokenUsage u = usage();  // vLLM: the role chunks carry usage too (0 completion tokens)
  for (int32_t i = 0; i < plan_.num_choices; ++i) {
    emit(out, encoder_.role_chunk(i, plan_.continuous_usage ? &u : nullptr));
  }
}

protocol::TokenUsage Generation::usage() const {
  protocol::TokenUsage u;
  u.prompt_tokens = plan_.prompt_tokens;
  for (const auto& s : seqs_) u.completion_tokens += s.completion_tokens;
  return u;
}

void Generation::fail(const ApiError& error, WireOutput& out) {
  failure_ = error;
  finished_ = true;
  // One failed choice fails the request: stop the others now rather than let them run to the end.
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (!seqs_[i].ended && engine_) engine_->cancel(ids_[i]);
  }
  if (wire_ == Wire::kSse) {
    protocol::append_sse_event(out.bytes, error_body_with_id(error, plan_.request_id));
    out.bytes += protocol::kSseDone;
  } else if (wire_ == Wire::kWs) {
    out.messages.push_back(protocol::ws_error_event(ws_id_json_, error));
  }
}

void Generation::finish_all(WireOutput& out) {
  finished_ = true;
  if (cancel_cause_ == CancelCause::kClientGone) return;
  if (wire_ == Wire::kSse) {
    if (plan_.include_usage) protocol::append_sse_event(out.bytes, encoder_.usage_chunk(usage()));
    out.bytes += protocol::kSseDone;
  } else if (wire_ == Wire::kWs) {
    const char* status = cancel_cause_ == CancelCause::kClientRequest ? "cancelled" : "completed";
    out.messages.push_back(protocol::ws_done_event(ws_id_json_, status, usage()));
  }
}

std::string Generation::take_logprobs_json(SequenceState& seq) {
  if (seq.logprobs.empty()) return {};
  const auto object = protocol::logprobs_object(plan_.endpoint, seq.logprobs, seq.text_offset);
  for (const auto& t : seq.logprobs) seq.text_offset += protocol::logprob_text_length(t.sampled);
  seq.logprobs.clear();
  return boost::json::serialize(object);
}

void Generation::on_event(const StreamEvent& event, WireOutput& out) {
  if (!owns(event.tag)) return;
  last_event_ = std::chrono::steady_clock::now();
  if (!started_) start(out);
  const size_t index = event.tag - first_tag_;
  auto& seq = seqs_[index];
  const int32_t choice = plan_.sequences[index].choice_index;
  if (event.kind == StreamEvent::Kind::kDelta) {
    if (finished_ || seq.ended) return;
    seq.completion_tokens += event.num_tokens;
    if (plan_.logprobs && engine_ && !event.logprobs.empty()) {
      auto rendered = render_logprobs(event.logprobs, engine_->tokenizer(plan_.model));
      seq.logprobs.insert(seq.logprobs.end(), std::make_move_iterator(rendered.begin()),
                          std::make_move_iterator(rendered.end()));
    }
    if (wire_ == Wire::kJson) {
      seq.text += event.text;
    } else if (!event.text.empty()) {
      protocol::TokenUsage u = usage();
      emit(out,
           encoder_.text_chunk(choice, event.text, plan_.continuous_usage ? &u : nullptr, take_logprobs_json(seq)));
    }
    return;
  }
  if (event.kind != StreamEvent::Kind::kFinish || seq.ended) return;
  seq.ended = true;
  ++ended_;
  seq.completion = event.completion;
  seq.completion_tokens = std::max<int64_t>(seq.completion_tokens, event.completion.usage.completion_tokens);
  if (finished_) return;  // a late end after an error, or of a sibling cancelled with it
  switch (event.completion.reason) {
    case runtime::FinishReason::kStop:
    case runtime::FinishReason::kLength:
      if (wire_ != Wire::kJson) {
        protocol::TokenUsage u = usage();
        emit(out, encoder_.finish_chunk(choice, runtime::finish_reason_name(event.completion.reason),
                                        stop_reason_of(event.completion), plan_.continuous_usage ? &u : nullptr,
                                        take_logprobs_json(seq)));
      }
      break;
    case runtime::FinishReason::kCancelled:
      if (cancel_cause_ == CancelCause::kNone) {
        fail(ApiError::unavailable("The request was cancelled by the server (it is shutting down, or the client "
                                   "read the stream too slowly).",
                                   "request_cancelled", 0),
             out);
        return;
      }
      break;
    case runtime::FinishReason::kError: {
      ApiError e = event.completion.error ? ApiError::from(*event.completion.error)
                                          : ApiError::internal("the engine failed this request");
      fail(e, out);
      return;
    }
  }
  if (ended_ == seqs_.size()) finish_all(out);
}

HttpResponse Generation::json_response() const {
  HttpResponse r;
  if (failure_) {
    r.status = failure_->status;
    r.body = protocol::error_body(*failure_);
    return r;
  }
  std::vector<protocol::ChoiceResult> choices;
  choices.reserve(seqs_.size());
  for (size_t i = 0; i < seqs_.size(); ++i) {
    protocol::ChoiceResult c;
    c.index = plan_.sequences[i].choice_index;
    c.text = seqs_[i].text;
    c.finish_reason = runtime::finish_reason_name(seqs_[i].completion.reason);
    c.stop_reason = stop_reason_of(seqs_[i].completion);
    if (plan_.logprobs) c.logprobs = seqs_[i].logprobs;
    choices.push_back(std::move(c));
  }
  r.body = plan_.endpoint == protocol::Endpoint::kChat
               ? protocol::chat_completion_body(plan_.response_id, plan_.model, plan_.created, choices, usage())
               : protocol::text_completion_body(plan_.response_id, plan_.model, plan_.created, choices, usage());
  return r;
}

}  // namespace aurora::server
