// Private: a generation request from validation to its last byte on the wire.
//
// plan_chat / plan_completion resolve the model, apply the chat template, tokenize and check the
// context length: every validation happens here, before the first byte of a response. A
// Generation then submits one engine request per choice (n, and each prompt of a batch), feeds
// their events (from a TokenChannel) through the ChunkEncoder, and produces SSE bytes, WebSocket
// messages, or one JSON body. Not thread-safe: owned by one session, used on its strand.
#pragma once

#include <chrono>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "aurora/config/protocol/api_error.hpp"
#include "aurora/config/protocol/requests.hpp"
#include "aurora/config/protocol/responses.hpp"
#include "aurora/runtime/engine.hpp"
#include "aurora/server/server.hpp"
#include "metrics.hpp"
#include "token_channel.hpp"

namespace aurora::server {

// A value or the ApiError to answer with.
template <class T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}                   // NOLINT(google-explicit-constructor)
  Expected(protocol::ApiError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const protocol::ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, protocol::ApiError> v_;
};

struct SequencePlan {
  int32_t choice_index = 0;
  runtime::GenerationRequest request;
};

struct GenerationPlan {
  protocol::Endpoint endpoint = protocol::Endpoint::kChat;
  std::string model;
  std::string request_id;   // X-Request-Id (echoed or generated); in error events' bodies
  std::string response_id;  // chatcmpl-<request id> | cmpl-<request id>
  int64_t created = 0;
  int32_t num_choices = 0;
  int64_t prompt_tokens = 0;  // usage: each distinct prompt counted once
  std::vector<SequencePlan> sequences;
  bool include_usage = false;
  bool continuous_usage = false;
  bool logprobs = false;  // the choices carry logprobs objects (SamplingFields::logprobs)
  runtime::Clock::time_point arrival;
};

struct RequestInfo {
  std::string request_id;
  runtime::Clock::time_point arrival;
};

Expected<GenerationPlan> plan_chat(const protocol::ChatRequest& request, const runtime::Engine& engine,
                                   const RequestInfo& info);
Expected<GenerationPlan> plan_completion(const protocol::CompletionRequest& request, const runtime::Engine& engine,
                                         const RequestInfo& info);
// The served model for a request's `model` field ("" = the first model), or 404 model_not_found.
Expected<runtime::ModelInfo> resolve_model(const runtime::Engine& engine, const std::string& name);

// Output produced by one step of a generation.
struct WireOutput {
  std::string bytes;                  // SSE
  std::vector<std::string> messages;  // WebSocket
  bool empty() const { return bytes.empty() && messages.empty(); }
};

class Generation {
 public:
  enum class Wire { kSse, kJson, kWs };
  // Why a cancellation happened: the client went away or asked for it (nothing more is sent, or a
  // `response.done` with status "cancelled"), or the server/engine did (an error event is sent).
  enum class CancelCause { kNone, kClientGone, kClientRequest };

  Generation(GenerationPlan plan, Wire wire, std::string ws_id_json = "null");

  // Submits every sequence on `channel` with tags first_tag.. ; on failure cancels the ones already
  // submitted and returns the error to answer with (429/503 when the waiting queue is full).
  std::optional<protocol::ApiError> submit(const std::shared_ptr<runtime::Engine>& engine,
                                           const std::shared_ptr<TokenChannel>& channel, uint32_t first_tag,
                                           Metrics& metrics, const config::ServerConfig& config);
  // Cancels every unfinished sequence (idempotent).
  void cancel(CancelCause cause);
  // No token came for `seconds` (a wedged engine, reliability F14): ends the request with a 503
  // no_progress error (SSE: an error event and [DONE]) and cancels what is still running.
  void stall(double seconds, WireOutput& out);
  // When this request last got an event from the engine (or was submitted).
  std::chrono::steady_clock::time_point last_event() const { return last_event_; }

  // The first output (chat: a role chunk per choice); on_event() calls it when it was not called.
  void start(WireOutput& out);
  void on_event(const StreamEvent& event, WireOutput& out);

  bool owns(uint32_t tag) const { return tag >= first_tag_ && tag < first_tag_ + plan_.sequences.size(); }
  uint32_t first_tag() const { return first_tag_; }
  uint32_t num_tags() const { return static_cast<uint32_t>(plan_.sequences.size()); }
  // The terminal output ([DONE], response.done, or an error event) has been produced.
  bool finished() const { return finished_; }
  // Every engine request has reported its end (the engine holds no more of our sinks' work).
  bool all_sequences_ended() const { return ended_ == plan_.sequences.size(); }
  // JSON wire, once finished: the response to send.
  HttpResponse json_response() const;
  const GenerationPlan& plan() const { return plan_; }

 private:
  struct SequenceState {
    std::string text;  // JSON wire only
    // Logprobs (plan().logprobs): JSON wire, all of them; streaming, those not yet sent (the
    // tokens of held-back text ride with the next text chunk, or the finish chunk).
    std::vector<protocol::TokenLogprobs> logprobs;
    int64_t text_offset = 0;  // completions streaming: characters of the token strings already sent
    int64_t completion_tokens = 0;
    bool ended = false;
    runtime::Completion completion;
  };
  void emit(WireOutput& out, const std::string& chunk_json);
  void fail(const protocol::ApiError& error, WireOutput& out);
  void finish_all(WireOutput& out);
  protocol::TokenUsage usage() const;
  std::string take_logprobs_json(SequenceState& seq);  // "" when there are none to send

  GenerationPlan plan_;
  Wire wire_;
  std::string ws_id_json_;
  protocol::ChunkEncoder encoder_;
  std::shared_ptr<runtime::Engine> engine_;
  std::vector<runtime::RequestId> ids_;
  std::vector<SequenceState> seqs_;
  uint32_t first_tag_ = 0;
  size_t ended_ = 0;
  bool finished_ = false;
  bool submitted_ = false;
  bool started_ = false;
  CancelCause cancel_cause_ = CancelCause::kNone;
  std::chrono::steady_clock::time_point last_event_ = std::chrono::steady_clock::now();
  std::optional<protocol::ApiError> failure_;
};

}  // namespace aurora::server
