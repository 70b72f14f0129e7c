#include "ws_session.hpp"

#include <algorithm>

#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "aurora/config/protocol/ws_messages.hpp"
#include "http_framing.hpp"
#include "log.hpp"

namespace aurora::server {

namespace websocket = beast::websocket;
using protocol::ApiError;
using std::chrono::milliseconds;

WsSession::WsSession(beast::tcp_stream stream, std::shared_ptr<ServerState> state, Request upgrade)
    : ws_(std::move(stream)), upgrade_(std::move(upgrade)), state_(std::move(state)), writer_done_(ws_.get_executor()) {
  const auto& config = state_->config;
  channel_ = std::make_shared<TokenChannel>(ws_.get_executor(), static_cast<size_t>(config.stream_queue_events),
                                            static_cast<size_t>(config.stream_max_pending_bytes));
}

WsSession::~WsSession() {
  // Requests still registered were counted as open streams.
  state_->metrics.streams_open.fetch_sub(static_cast<int64_t>(by_id_.size()), std::memory_order_relaxed);
}

awaitable<void> WsSession::run(std::shared_ptr<WsSession> self) {
  const auto& config = self->state_->config;
  // The WebSocket layer owns the timeouts from here on.
  beast::get_lowest_layer(self->ws_).expires_never();
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = milliseconds(config.ws_handshake_timeout_ms);
  timeouts.idle_timeout = milliseconds(config.ws_idle_timeout_ms);
  timeouts.keep_alive_pings = true;
  self->ws_.set_option(timeouts);
  websocket::permessage_deflate deflate;  // off: no inflate state per connection, no compression bombs
  deflate.server_enable = false;
  deflate.client_enable = false;
  self->ws_.set_option(deflate);
  self->ws_.read_message_max(static_cast<std::uint64_t>(config.ws_max_message_bytes));
  self->ws_.auto_fragment(false);
  auto [ec] = co_await self->ws_.async_accept(self->upgrade_, use_tuple);
  if (ec) co_return;
  self->ws_.text(true);
  self->writer_running_ = true;
  net::co_spawn(self->ws_.get_executor(), write_loop(self), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_error(std::string("websocket writer failed: ") + e.what());
    }
  });
  try {
    co_await self->read_loop();
  } catch (const std::exception& e) {
    log_error(std::string("websocket reader failed: ") + e.what());
  }
  self->reader_done_ = true;
  // Closing the socket (or losing it) cancels every request in flight.
  self->cancel_all(Generation::CancelCause::kClientGone);
  self->channel_->close();
  for (int i = 0; self->writer_running_; ++i) {
    if (i > 0) {
      // The writer is stuck in a write to a peer that does not read: cut the connection.
      boost::system::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
    }
    self->writer_done_.expires_after(milliseconds(config.write_timeout_ms));
    co_await self->writer_done_.async_wait(use_tuple);
  }
  boost::system::error_code ignored;
  beast::get_lowest_layer(self->ws_).socket().close(ignored);
}

void WsSession::stop(StopMode mode) {
  draining_ = true;
  if (mode == StopMode::kForce) {
    cancel_all(Generation::CancelCause::kClientGone);
    boost::system::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }
  channel_->wake();
}

void WsSession::cancel_all(Generation::CancelCause cause) {
  for (auto& [id, generation] : by_id_) generation->cancel(cause);
}

void WsSession::send_error(const std::string& id_json, const ApiError& error) {
  channel_->push_message(protocol::ws_error_event(id_json, error));
}

awaitable<void> WsSession::read_loop() {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws_.async_read(buffer, use_tuple);
    // Closed by the peer, a message over the cap (Beast closes with 1009), invalid UTF-8 (1007), a
    // protocol error (1002), the idle timeout, or a reset: the session ends either way.
    if (ec) co_return;
    if (!ws_.got_text()) {
      send_error("null", ApiError::invalid_request("binary messages are not accepted: send JSON text"));
    } else {
      const auto data = buffer.cdata();
      on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    buffer.consume(buffer.size());
  }
}

void WsSession::on_message(std::string_view text) {
  const auto& config = state_->config;
  auto parsed = protocol::parse_ws_client_message(text, config.limits);
  const std::string& id = parsed.id_json;
  if (parsed.error) {
    send_error(id, ApiError::from(*parsed.error));
    return;
  }
  if (parsed.message.type == protocol::WsMessageType::kCancel) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      ApiError e = ApiError::not_found("no request with this id is in flight", "request_not_found");
      e.type = "invalid_request_error";
      e.param = "id";
      send_error(id, e);
      return;
    }
    it->second->cancel(Generation::CancelCause::kClientRequest);
    return;
  }
  if (draining_ || state_->draining.load()) {
    state_->metrics.count_rejection(RejectReason::kDraining);
    send_error(id, ApiError::unavailable("The server is shutting down.", "server_draining", config.retry_after_s));
    return;
  }
  if (by_id_.count(id) != 0) {
    send_error(id, ApiError::invalid_request("a request with this id is already in flight", "id", "duplicate_id"));
    return;
  }
  if (static_cast<int64_t>(by_id_.size()) >= config.ws_max_inflight) {
    state_->metrics.count_rejection(RejectReason::kWsInflight);
    ApiError e = ApiError::overloaded(
        "too many requests in flight on this connection (at most " + std::to_string(config.ws_max_inflight) + ")", 429,
        config.retry_after_s);
    e.code = "too_many_requests";
    send_error(id, e);
    return;
  }
  auto engine = state_->engine();
  if (!engine || !engine->ready()) {
    state_->metrics.count_rejection(RejectReason::kLoading);
    send_error(id, ApiError::unavailable("The model is loading.", "model_loading", config.retry_after_s));
    return;
  }
  auto plan = plan_chat(parsed.message.request, *engine, RequestInfo{generate_request_id(), runtime::Clock::now()});
  if (!plan.ok()) {
    send_error(id, plan.error());
    return;
  }
  plan.value().include_usage = false;  // response.done carries the usage
  auto generation = std::make_unique<Generation>(std::move(plan.value()), Generation::Wire::kWs, id);
  // Queued before submit(), so it precedes the first chunk the engine thread pushes.
  channel_->push_message(protocol::ws_created_event(id));
  if (auto rejected = generation->submit(engine, channel_, next_tag_, state_->metrics, config)) {
    send_error(id, *rejected);
    return;
  }
  for (uint32_t t = 0; t < generation->num_tags(); ++t) by_tag_[next_tag_ + t] = id;
  next_tag_ += generation->num_tags();
  by_id_.emplace(id, std::move(generation));
  state_->metrics.streams_open.fetch_add(1, std::memory_order_relaxed);
}

awaitable<void> WsSession::write_loop(std::shared_ptr<WsSession> self) {
  std::vector<StreamEvent> events;
  WireOutput out;
  bool closing = false;
  // Wake often enough to notice a request that got no token for no_progress_timeout_ms.
  const int64_t no_progress_ms = self->state_->config.no_progress_timeout_ms;
  const std::chrono::milliseconds period(no_progress_ms > 0 ? std::clamp<int64_t>(no_progress_ms / 4, 10, 30'000)
                                                            : 30'000);
  for (;;) {
    const auto waited = co_await self->channel_->wait(period);
    if (waited == TokenChannel::WaitResult::kClosed) break;
    self->channel_->pop_all(events);
    for (auto& e : events) {
      if (e.kind == StreamEvent::Kind::kMessage) {
        out.messages.push_back(std::move(e.text));
        continue;
      }
      auto tag = self->by_tag_.find(e.tag);
      if (tag == self->by_tag_.end()) continue;  // a request that already ended
      const std::string id = tag->second;
      auto it = self->by_id_.find(id);
      if (it == self->by_id_.end()) continue;
      Generation& generation = *it->second;
      generation.on_event(e, out);
      if (generation.finished()) {
        for (uint32_t t = 0; t < generation.num_tags(); ++t) self->by_tag_.erase(generation.first_tag() + t);
        self->by_id_.erase(it);
        self->state_->metrics.streams_open.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    if (no_progress_ms > 0 && !self->by_id_.empty() && self->state_->engine_stalled_for(no_progress_ms)) {
      const auto now = std::chrono::steady_clock::now();
      for (auto it = self->by_id_.begin(); it != self->by_id_.end();) {
        Generation& generation = *it->second;
        const double silent_s = std::chrono::duration<double>(now - generation.last_event()).count();
        if (silent_s * 1000.0 < static_cast<double>(no_progress_ms)) {
          ++it;
          continue;
        }
        generation.stall(silent_s, out);
        self->state_->metrics.no_progress_cancels.fetch_add(1, std::memory_order_relaxed);
        for (uint32_t t = 0; t < generation.num_tags(); ++t) self->by_tag_.erase(generation.first_tag() + t);
        it = self->by_id_.erase(it);
        self->state_->metrics.streams_open.fetch_sub(1, std::memory_order_relaxed);
      }
    }
    bool failed = false;
    for (const auto& message : out.messages) {
      const net::const_buffer data = net::buffer(message);
      auto [ec, n] = co_await self->ws_.async_write(data, use_tuple);
      if (ec) {
        failed = true;
        break;
      }
    }
    out.messages.clear();
    if (failed) {
      // The peer is gone: free the engine's work and unblock the reader.
      self->cancel_all(Generation::CancelCause::kClientGone);
      self->state_->metrics.client_disconnects.fetch_add(1, std::memory_order_relaxed);
      boost::system::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
      break;
    }
    if (self->draining_ && self->by_id_.empty() && !closing && !self->reader_done_) {
      closing = true;
      const websocket::close_reason reason(websocket::close_code::going_away);
      auto [ec] = co_await self->ws_.async_close(reason, use_tuple);
      if (ec) break;
    }
  }
  self->writer_running_ = false;
  self->writer_done_.cancel();
}

}  // namespace aurora::server
