// Server: Aurora's OpenAI-compatible HTTP/SSE and WebSocket front end on top of an Engine.
//
// Routes: POST /v1/chat/completions, POST /v1/completions (SSE or JSON), GET /v1/models,
// GET /health, POST /tokenize, POST /detokenize, GET /metrics (Prometheus), GET /v1/ws (WebSocket),
// plus any route added with add_route(). Limits, timeouts and caps come from ServerConfig (see
// docs/server.md for every default).
//
// Threads: io threads (config.io_threads) run one coroutine per connection, each on its own strand;
// the engine runs its own threads and talks back only through bounded TokenChannels, so it never
// waits on a client. No exception from a session ever leaves the io threads.
//
// Lifecycle (all methods thread-safe unless noted):
//   Server server(config);           // nothing runs yet
//   server.set_engine(engine);       // may come after start(): until then /health is 503 "loading"
//   server.start();                  // binds, starts the io threads; port() is known
//   int code = server.run(true);     // blocks: SIGTERM/SIGINT drain then return 0; a second signal
//                                    // exits the process at once (exit code 128 + signal)
// drain() starts the same graceful drain programmatically; stop() closes everything at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "aurora/config/error.hpp"
#include "aurora/config/server_config.hpp"
#include "aurora/runtime/engine.hpp"

namespace aurora::server {

// A plain request/response pair for routes that answer with one body (no streaming).
struct HttpRequestView {
  std::string method;  // "GET", "POST", ...
  std::string path;    // target without the query string
  std::string query;   // after '?', "" when none
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using RouteHandler = std::function<HttpResponse(const HttpRequestView&, runtime::Engine* engine)>;

struct ServerState;

class Server {
 public:
  explicit Server(config::ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Sets the engine to serve. Until it is set, generation routes answer 503 (code "model_loading").
  void set_engine(std::shared_ptr<runtime::Engine> engine);
  // Adds a non-streaming route (exact path match) before start(); the API key gate applies to it.
  // The handler runs on an io thread: it must answer quickly and never block (the engine may be
  // null while loading).
  void add_route(const std::string& method, const std::string& path, RouteHandler handler);

  // Binds host:port (errors name the address) and starts the io threads.
  Result<void> start();
  uint16_t port() const;

  // Blocks until the server has drained (after drain(), or a signal when handle_signals) and
  // returns the process exit code (0 after a graceful drain).
  int run(bool handle_signals);
  // Starts a graceful drain: 503 + Connection: close for new requests (/health too), let in-flight requests finish
  // within drain_timeout_ms, then cancel the rest. Idempotent.
  void drain();
  // Closes every connection and stops the io threads at once (also done by the destructor).
  void stop();

 private:
  void perform_drain();

  std::shared_ptr<ServerState> state_;
  struct Runtime;
  std::unique_ptr<Runtime> runtime_;
};

}  // namespace aurora::server
