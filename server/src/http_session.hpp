// Private: HttpSession, one client connection: a coroutine on the connection's own strand that reads
// a request (header first, then the body, each under its own deadline), answers it, and loops while
// the connection is kept alive. Generation requests stream SSE (or wait for one JSON body) while a
// second coroutine keeps a read pending on the socket, so a client that closes or resets is seen at
// once and its engine requests are cancelled. A WebSocket upgrade hands the stream to WsSession.
//
// Thread safety: all members run on the strand; stop() must be called there (TaskGroup posts it).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "asio.hpp"
#include "aurora/config/protocol/api_error.hpp"
#include "generation.hpp"
#include "server_state.hpp"
#include "task_group.hpp"
#include "token_channel.hpp"

namespace aurora::server {

class WsSession;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, std::shared_ptr<ServerState> state);
  ~HttpSession();

  // The connection's coroutine; ends when the connection does. Never throws out (TaskGroup logs).
  static awaitable<void> run(std::shared_ptr<HttpSession> self);
  // kDrain: close if idle, else finish the current exchange; kForce: close now.
  void stop(StopMode mode);

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  enum class Phase { kIdle, kReading, kHandling, kWebSocket };

  awaitable<void> serve();
  awaitable<bool> handle(Request& request, const std::string& request_id, bool keep_alive,
                         runtime::Clock::time_point arrival);
  awaitable<bool> serve_generation(Request& request, protocol::Endpoint endpoint, const std::string& request_id,
                                   bool keep_alive, runtime::Clock::time_point arrival);
  awaitable<bool> run_generation(Generation& generation, bool stream, unsigned version, const std::string& request_id,
                                 bool keep_alive);
  awaitable<bool> write_response(const HttpResponse& response, unsigned version, bool keep_alive,
                                 const std::string& request_id, int retry_after_s = 0, bool authenticate = false);
  awaitable<bool> write_error(const protocol::ApiError& error, unsigned version, bool keep_alive,
                              const std::string& request_id);
  awaitable<bool> write_stream_bytes(const std::string& payload, bool chunked);

  // The read kept pending while a generation runs (detects FIN, RST, and TCP_USER_TIMEOUT expiry).
  void start_monitor();
  static awaitable<void> monitor(std::shared_ptr<HttpSession> self);
  awaitable<void> stop_monitor();
  void on_peer_gone();
  void close_socket();
  void log_access(const Request* request, int status, size_t bytes, const std::string& request_id);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  Phase phase_ = Phase::kIdle;
  bool stop_requested_ = false;
  std::shared_ptr<WsSession> ws_;

  // While a generation runs.
  std::shared_ptr<TokenChannel> channel_;
  Generation* active_ = nullptr;
  bool peer_gone_ = false;
  bool monitor_running_ = false;
  bool monitor_stop_ = false;
  net::steady_timer monitor_timer_;
  const Request* current_request_ = nullptr;
  runtime::Clock::time_point request_start_;
};

}  // namespace aurora::server
