// StubServer: an OpenAI-compatible streaming server with scripted timings, for the load
// generator's tests (a fake server that emits known timings) and its overhead benchmark (a stub
// that streams fixed chunks as fast as asked).
//
// Contract: serves POST /v1/chat/completions and /v1/completions as SSE, Aurora's /v1/ws
// (response.create / response.cancel, multiplexed by id), GET /v1/models, /health and /metrics,
// and POST /tokenize when given a tokenizer function.
// Each request gets a StubScript from the script function: when each chunk leaves (offsets from
// the moment the request was read), errors to inject, framing quirks. start() runs it on
// background threads; stop() (or the destructor) joins them. Counters are thread-safe.
// While an SSE stream runs, the socket is watched for the client's disconnect (as a real server
// keeps a read pending): it ends the stream at once and counts in sse_disconnects.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace aurora::loadgen::stub {

struct StubScript {
  int status = 200;                      // not 200: an OpenAI error body instead of a stream
  std::vector<double> chunk_offsets_ms;  // when each content chunk leaves
  std::string chunk_text = "tok";
  bool role_chunk = true;                          // chat: first a chunk with the role and empty content
  bool finish_chunk = true;                        // a chunk with finish_reason after the last content
  bool usage = true;                               // the usage chunk (when the request asks for it)
  std::optional<int64_t> usage_completion_tokens;  // default: the number of content chunks
  int64_t usage_prompt_tokens = 7;
  bool done = true;                          // data: [DONE]
  std::optional<size_t> error_after_chunks;  // an in-stream error event after N content chunks
  std::optional<size_t> close_after_chunks;  // drop the connection after N content chunks
  std::vector<double> ping_offsets_ms;       // ": ping" comments
  size_t fragment_bytes = 0;                 // > 0: write every event in pieces this small
  bool crlf = false;                         // "\r\n" line endings
};

// A script of `num_chunks` chunks: the first after first_ms, then one every interval_ms.
StubScript uniform_script(int64_t num_chunks, double first_ms, double interval_ms);

struct StubRequest {
  std::string path;  // "/v1/chat/completions", "/v1/completions" or "/v1/ws"
  bool chat = true;
  std::string model;
  int64_t max_tokens = 0;  // 0 when absent
  bool include_usage = false;
  std::string prompt_text;  // the prompt, or the messages' contents joined
};

using ScriptFn = std::function<StubScript(const StubRequest&)>;

struct StubServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  int threads = 1;
  ScriptFn script;                                      // default: uniform_script(max_tokens or 16, 0, 0)
  std::function<std::string()> metrics_text;            // default: a few counters
  std::function<int64_t(const std::string&)> tokenize;  // POST /tokenize {"count"}; unset: 404
  std::string model = "stub-model";
};

struct StubStats {
  int64_t connections = 0;
  int64_t http_requests = 0;
  int64_t streams = 0;
  int64_t sse_disconnects = 0;  // SSE streams whose client went away before the script's end
  int64_t ws_connections = 0;
  int64_t ws_requests = 0;
  int64_t ws_cancels = 0;
  int64_t chunks_sent = 0;
};

class StubServer {
 public:
  explicit StubServer(StubServerOptions options);
  ~StubServer();
  StubServer(const StubServer&) = delete;
  StubServer& operator=(const StubServer&) = delete;

  uint16_t port() const;
  void start();         // serve on background threads
  void run_blocking();  // serve on the calling thread (plus threads - 1) until stop()
  void stop();
  StubStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aurora::loadgen::stub
