// libFuzzer target: OpenAI request bodies and the WebSocket envelope (simdjson + our validation).
// Invariants: no exception or sanitizer report, and every accepted request respects every cap.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "aurora/config/protocol/requests.hpp"
#include "aurora/config/protocol/ws_messages.hpp"

namespace {

using namespace aurora::protocol;

void require(bool ok) {
  if (!ok) std::abort();
}

void check_sampling(const SamplingFields& s, const RequestLimits& limits) {
  require(s.n >= 1 && s.n <= limits.max_n);
  require(static_cast<int32_t>(s.stop.size()) <= limits.max_stop);
  for (const auto& stop : s.stop) require(!stop.empty() && static_cast<int32_t>(stop.size()) <= limits.max_stop_bytes);
  require(s.temperature >= 0.0f && s.temperature <= 2.0f);
  require(s.top_p > 0.0f && s.top_p <= 1.0f);
  require(s.top_k >= 0);
  require(!s.max_tokens || *s.max_tokens >= 1);
  require(static_cast<int32_t>(s.stop_token_ids.size()) <= limits.max_stop_token_ids);
  require(s.stream || !(s.include_usage || s.continuous_usage_stats));
}

}  // namespace

// The first byte picks the parser, so that each input costs one parse.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const RequestLimits limits;
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      if (auto chat = parse_chat_request(body, limits); chat.ok()) {
        require(!chat->messages.empty() && static_cast<int32_t>(chat->messages.size()) <= limits.max_messages);
        check_sampling(chat->sampling, limits);
      }
      break;
    case 1:
      if (auto completion = parse_completion_request(body, limits); completion.ok()) {
        require(!completion->prompts.empty());
        for (const auto& p : completion->prompts) {
          for (int32_t id : p.token_ids) require(id >= 0);
        }
        check_sampling(completion->sampling, limits);
      }
      break;
    case 2: {
      const WsParsed ws = parse_ws_client_message(body, limits);
      if (!ws.error && ws.message.type == WsMessageType::kCreate) check_sampling(ws.message.request.sampling, limits);
      break;
    }
    case 3: (void)parse_tokenize_request(body, limits); break;
    default: (void)parse_detokenize_request(body, limits);
  }
  return 0;
}
