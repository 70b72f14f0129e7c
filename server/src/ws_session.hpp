// Private: WsSession, the WebSocket endpoint /v1/ws (message shapes in
// aurora/config/protocol/ws_messages.hpp). Requests are multiplexed by client-chosen id: a reader
// coroutine parses client messages and submits or cancels, one writer coroutine drains the shared
// TokenChannel and is the only one that writes to the socket. Closing the socket cancels every
// request in flight. Messages are capped (close 1009 past ws_max_message_bytes), permessage-deflate
// is off, and Beast's server timeouts (handshake, idle with pings) apply.
//
// Thread safety: strand only; stop() is posted there by the TaskGroup.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "asio.hpp"
#include "generation.hpp"
#include "server_state.hpp"
#include "task_group.hpp"
#include "token_channel.hpp"

namespace aurora::server {

class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  // `upgrade` is the HTTP request that asked for the WebSocket.
  WsSession(beast::tcp_stream stream, std::shared_ptr<ServerState> state, Request upgrade);
  ~WsSession();

  static awaitable<void> run(std::shared_ptr<WsSession> self);
  // kDrain: refuse new requests, close (1001 going away) once the in-flight ones end; kForce: close now.
  void stop(StopMode mode);

 private:
  awaitable<void> read_loop();
  static awaitable<void> write_loop(std::shared_ptr<WsSession> self);
  void on_message(std::string_view text);
  void cancel_all(Generation::CancelCause cause);
  void send_error(const std::string& id_json, const protocol::ApiError& error);

  boost::beast::websocket::stream<beast::tcp_stream> ws_;
  Request upgrade_;
  std::shared_ptr<ServerState> state_;
  std::shared_ptr<TokenChannel> channel_;
  std::map<std::string, std::unique_ptr<Generation>> by_id_;  // id JSON text -> request
  std::unordered_map<uint32_t, std::string> by_tag_;          // tag -> id JSON text
  uint32_t next_tag_ = 0;
  bool draining_ = false;
  bool reader_done_ = false;
  bool writer_running_ = false;
  net::steady_timer writer_done_;
};

}  // namespace aurora::server
