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
  // `reserve`: a connection past max_connections, taken from the reserve: it answers one request,
  // and only a probe route (/health, /metrics, /v1/models); anything else gets 503.
  HttpSession(tcp::socket socket, std::shared_ptr<ServerState> state, bool reserve = false);
  ~HttpSession();

  // The connection's coroutine; ends when the connection does. Never throws out (TaskGroup logs).
  static awaitable<void> run(std::shared_ptr<HttpSession> self);
  // kDrain: close if idle, else finish the current exchange; kForce: close now.
  void stop(StopMode mode);

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  enum class Phase { kIdle, kReading, kHandling, kWebSocket };

  // One complete answer. Coroutines only ever await calls on named values: g++ 12 destroys some
  // class-type temporaries of a co_await expression twice, so replies are built by plain functions.
  struct Reply {
    HttpResponse response;
    bool keep_alive = true;
    int retry_after_s = 0;
    bool authenticate = false;  // WWW-Authenticate: Bearer
    std::string allow;          // 405: the Allow header (the methods the route serves)
    bool omit_body = false;     // HEAD: headers (Content-Length of the body) without the body
  };
  enum class Action { kReply, kChat, kCompletion, kWebSocket };
  struct Decision {
    Action action = Action::kReply;
    Reply reply;
  };

  static Reply error_reply(const protocol::ApiError& error, bool keep_alive);

  awaitable<void> serve();
  Decision decide(const Request& request, bool keep_alive) const;
  Decision route(const Request& request, bool keep_alive) const;
  Decision custom(const CustomRoute& route, const Request& request, const std::string& path, const std::string& query,
                  bool keep_alive) const;
  awaitable<bool> handle(Request& request, const std::string& request_id, bool keep_alive,
                         runtime::Clock::time_point arrival);
  // Validates and submits a generation: a Reply when it is refused, else nullopt and `generation` set.
  std::optional<Reply> prepare_generation(const Request& request, protocol::Endpoint endpoint,
                                          const std::string& request_id, bool keep_alive,
                                          runtime::Clock::time_point arrival, std::optional<Generation>& generation,
                                          bool& stream);
  awaitable<bool> serve_generation(Request& request, protocol::Endpoint endpoint, const std::string& request_id,
                                   bool keep_alive, runtime::Clock::time_point arrival);
  awaitable<bool> run_generation(Generation& generation, bool stream, unsigned version, const std::string& request_id,
                                 bool keep_alive);
  awaitable<bool> write_reply(const Reply& reply, unsigned version, const std::string& request_id);
  awaitable<bool> write_stream_bytes(const std::string& payload, bool chunked);

  // The read kept pending while a generation runs (detects FIN, RST, and TCP_USER_TIMEOUT expiry).
  void start_monitor();
  static awaitable<void> monitor(std::shared_ptr<HttpSession> self);
  awaitable<void> stop_monitor();
  void on_peer_gone();
  // A read deadline that cancels the pending read instead of closing the socket (as tcp_stream's
  // expiry does), so that a 408 can still be written. read_timed_out() tells a cancelled read
  // from an expired one.
  void arm_read_deadline(std::chrono::milliseconds timeout);
  void disarm_read_deadline();
  bool read_timed_out() const { return read_timed_out_; }
  void close_socket();
  void log_access(const Request* request, int status, size_t bytes, const std::string& request_id);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::shared_ptr<ServerState> state_;
  const bool reserve_;
  Phase phase_ = Phase::kIdle;
  bool stop_requested_ = false;
  int requests_served_ = 0;
  std::shared_ptr<WsSession> ws_;

  // While a generation runs.
  std::shared_ptr<TokenChannel> channel_;
  Generation* active_ = nullptr;
  bool peer_gone_ = false;
  bool monitor_running_ = false;
  bool monitor_stop_ = false;
  net::steady_timer monitor_timer_;
  net::steady_timer read_deadline_;
  uint64_t read_deadline_seq_ = 0;
  bool read_timed_out_ = false;
  const Request* current_request_ = nullptr;
  runtime::Clock::time_point request_start_;
};

}  // namespace aurora::server
