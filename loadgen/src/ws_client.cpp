// The WebSocket client for Aurora's /v1/ws: requests multiplexed by id over a few sockets.
#include <deque>
#include <optional>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "asio_util.hpp"
#include "aurora/loadgen/client.hpp"
#include "response_tracker.hpp"

namespace aurora::loadgen {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using detail::Signal;
using detail::use_tuple;
using tcp = asio::ip::tcp;

SteadyClock::duration to_duration(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

// One request waiting on a socket. `wake` is notified when the request ends (the tracker is
// finished) and when its response.create has been written in full (`sent`).
struct Pending {
  Pending(asio::any_io_executor ex, detail::ResponseTracker& t) : tracker(t), wake(std::move(ex)) {}
  detail::ResponseTracker& tracker;
  Signal wake;
  std::optional<SteadyClock::time_point> sent_at;
};

// A message waiting to be written; `sent_id` names the request to tell once it is on the wire.
struct Outgoing {
  std::string text;
  std::string sent_id;
};

class WsConnection : public std::enable_shared_from_this<WsConnection> {
 public:
  enum class State { kNew, kConnecting, kOpen, kBroken };

  WsConnection(asio::any_io_executor ex, ClientOptions options, std::shared_ptr<SteadyClock::time_point> t0)
      : ex_(ex), options_(std::move(options)), t0_(t0), ws_(ex), ready_(ex) {}

  State state() const { return state_; }

  asio::awaitable<Result<void>> ensure_open(SteadyClock::time_point deadline) {
    if (state_ == State::kOpen) co_return Result<void>{};
    if (state_ == State::kConnecting) {
      co_await ready_.wait_until(deadline);
      if (state_ == State::kOpen) co_return Result<void>{};
      co_return Error::make(ErrorCode::kUnavailable, broken_reason_.empty() ? "connect timed out" : broken_reason_);
    }
    if (state_ == State::kBroken) co_return Error::make(ErrorCode::kUnavailable, broken_reason_);
    state_ = State::kConnecting;
    auto result = co_await open(deadline);
    if (result) {
      state_ = State::kOpen;
      asio::co_spawn(ex_, read_loop(shared_from_this()), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "aurora-loadgen: websocket reader: %s\n", ex.what());
        }
      });
    } else {
      state_ = State::kBroken;
      broken_reason_ = result.error().message;
    }
    ready_.notify();
    co_return result;
  }

  void add(const std::string& id, Pending* p) { pending_[id] = p; }
  void remove(const std::string& id) { pending_.erase(id); }

  void enqueue(std::string message, std::string sent_id = {}) {
    if (state_ != State::kOpen) return;
    outbox_.push_back(Outgoing{std::move(message), std::move(sent_id)});
    if (writing_) return;
    writing_ = true;
    asio::co_spawn(ex_, drain(shared_from_this()), [](std::exception_ptr) {});
  }

  // Ends every pending request with `reason` and asks the server to cancel them.
  void cancel_all(const std::string& reason) {
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
      p->tracker.fail(reason, "cancelled by the load generator", clock_());
      p->wake.notify();
      enqueue(build_ws_cancel(id));
    }
  }

  void close() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).close();
  }

 private:
  asio::awaitable<Result<void>> open(SteadyClock::time_point deadline) {
    tcp::resolver resolver(ex_);
    auto [rec, endpoints] = co_await resolver.async_resolve(options_.target.host, options_.target.port, use_tuple);
    if (rec) co_return Error::make(ErrorCode::kUnavailable, "resolve " + options_.target.host + ": " + rec.message());
    auto& tcp_layer = beast::get_lowest_layer(ws_);
    tcp_layer.expires_at(deadline);
    auto [cec, ep] = co_await tcp_layer.async_connect(endpoints, use_tuple);
    if (cec) co_return Error::make(ErrorCode::kUnavailable, "connect: " + cec.message());
    tcp_layer.socket().set_option(tcp::no_delay(true));
    tcp_layer.expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    const std::string key = options_.target.api_key;
    ws_.set_option(websocket::stream_base::decorator([key](websocket::request_type& req) {
      req.set(http::field::user_agent, "aurora-loadgen/0.1");
      if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
    }));
    ws_.read_message_max(64u << 20);
    ws_.text(true);
    websocket::response_type response;
    const std::string host = options_.target.host.find(':') != std::string::npos
                                 ? "[" + options_.target.host + "]:" + options_.target.port
                                 : options_.target.host + ":" + options_.target.port;
    auto [hec] =
        co_await ws_.async_handshake(response, host, options_.target.path_prefix + options_.target.endpoint, use_tuple);
    if (hec) {
      std::string detail = "handshake: " + hec.message();
      if (response.result_int() != 0) detail += " (HTTP " + std::to_string(response.result_int()) + ")";
      co_return Error::make(ErrorCode::kUnavailable, detail);
    }
    ++opened_;
    co_return Result<void>{};
  }

  static asio::awaitable<void> drain(std::shared_ptr<WsConnection> self) {
    while (!self->outbox_.empty() && self->state_ == State::kOpen) {
      auto [ec, n] = co_await self->ws_.async_write(asio::buffer(self->outbox_.front().text), use_tuple);
      const std::string sent_id = std::move(self->outbox_.front().sent_id);
      self->outbox_.pop_front();
      if (ec) {
        self->break_connection("write: " + ec.message());
        break;
      }
      if (!sent_id.empty()) self->on_sent(sent_id);
    }
    self->outbox_.clear();
    self->writing_ = false;
  }

  static asio::awaitable<void> read_loop(std::shared_ptr<WsConnection> self) {
    beast::flat_buffer buffer;
    for (;;) {
      auto [ec, n] = co_await self->ws_.async_read(buffer, use_tuple);
      const double t = self->clock_();
      if (ec) {
        self->break_connection(ec == websocket::error::closed ? "closed by the server" : "read: " + ec.message());
        co_return;
      }
      const std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
      self->dispatch(text, t);
      buffer.consume(buffer.size());
    }
  }

  void dispatch(std::string_view text, double t) {
    auto msg = parse_ws_message(text);
    if (!msg) {
      ++protocol_errors_;
      return;
    }
    if (msg->type == WsMessage::Type::kError && msg->id.empty()) {
      // An error about the socket rather than one request: everything on it fails.
      const std::string detail = detail::ResponseTracker::describe(msg->error);
      auto pending = std::move(pending_);
      pending_.clear();
      for (auto& [id, p] : pending) {
        p->tracker.fail("stream_error", detail, t);
        p->wake.notify();
      }
      return;
    }
    auto it = pending_.find(msg->id);
    if (it == pending_.end()) return;  // a request that already timed out or was cancelled
    Pending* p = it->second;
    bool finished = false;
    switch (msg->type) {
      case WsMessage::Type::kChunk: finished = !p->tracker.on_chunk(msg->chunk, t); break;
      case WsMessage::Type::kDone:
        p->tracker.on_usage(msg->prompt_tokens, msg->completion_tokens);
        if (msg->status.empty() || msg->status == "completed" || msg->status == "incomplete") {
          p->tracker.succeed(t);
        } else {
          p->tracker.fail("response_" + msg->status, "response.done with status " + msg->status, t);
        }
        finished = true;
        break;
      case WsMessage::Type::kError:
        p->tracker.fail("stream_error", detail::ResponseTracker::describe(msg->error), t);
        finished = true;
        break;
      case WsMessage::Type::kCreated:
      case WsMessage::Type::kOther: break;
    }
    if (finished) {
      pending_.erase(it);
      p->wake.notify();
    }
  }

  void on_sent(const std::string& id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    it->second->sent_at = SteadyClock::now();
    it->second->wake.notify();
  }

  double clock_() const { return std::chrono::duration<double>(SteadyClock::now() - *t0_).count(); }

  void break_connection(const std::string& reason) {
    if (state_ == State::kBroken) return;
    state_ = State::kBroken;
    broken_reason_ = reason;
    const double t = clock_();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, p] : pending) {
      p->tracker.fail("connection_closed", "websocket " + reason, t);
      p->wake.notify();
    }
    close();
  }

 public:
  int64_t opened_ = 0;
  int64_t protocol_errors_ = 0;

 private:
  asio::any_io_executor ex_;
  ClientOptions options_;
  std::shared_ptr<SteadyClock::time_point> t0_;
  websocket::stream<beast::tcp_stream> ws_;
  Signal ready_;
  State state_ = State::kNew;
  std::string broken_reason_;
  std::unordered_map<std::string, Pending*> pending_;
  std::deque<Outgoing> outbox_;
  bool writing_ = false;
};

class WsClient final : public StreamClient {
 public:
  WsClient(asio::any_io_executor ex, ClientOptions options) : ex_(std::move(ex)), options_(std::move(options)) {
    *t0_ = options_.t0;
    conns_.resize(static_cast<size_t>(options_.ws_connections));
  }

  asio::awaitable<void> send(const RequestSpec& spec, RequestRecord& record,
                             std::optional<double> cancel_after_s) override {
    detail::ResponseTracker tracker(record, options_.output_token_fallback, options_.keep_text);
    record.input_tokens = spec.input_tokens_estimate;
    record.kind = spec.kind;
    const auto deadline = SteadyClock::now() + to_duration(options_.request_timeout_s);
    record.start_s = seconds_since_t0();
    auto& slot = conns_[next_conn_++ % conns_.size()];
    if (!slot || slot->state() == WsConnection::State::kBroken) {
      slot = std::make_shared<WsConnection>(ex_, options_, t0_);
      ++connections_opened_;
    }
    std::shared_ptr<WsConnection> conn = slot;
    auto opened = co_await conn->ensure_open(deadline);
    if (!opened) {
      tracker.fail(SteadyClock::now() >= deadline ? "timeout" : "connect_failed", opened.error().message,
                   seconds_since_t0());
      co_return;
    }
    if (!cancel_reason_.empty()) {
      tracker.fail(cancel_reason_, "cancelled before sending", seconds_since_t0());
      co_return;
    }
    const std::string id = "r" + std::to_string(next_id_++);
    Pending pending(ex_, tracker);
    conn->add(id, &pending);
    conn->enqueue(build_ws_create(id, spec, options_.sampling), cancel_after_s ? id : std::string());
    // Wait for the end; a chosen request's cancellation clock starts once its create is written.
    while (!tracker.finished()) {
      SteadyClock::time_point until = deadline;
      bool cancel_due = false;
      if (cancel_after_s && pending.sent_at) {
        const auto cancel_at = *pending.sent_at + to_duration(*cancel_after_s);
        cancel_due = cancel_at < deadline;
        if (cancel_due) until = cancel_at;
      }
      pending.wake.reset();
      if (co_await pending.wake.wait_until(until)) continue;  // ended, or just written: look again
      if (tracker.finished()) break;
      // The client gives up: tell the server (it frees the request and answers response.done
      // "cancelled", which nobody waits for any more).
      conn->remove(id);
      if (cancel_due) {
        tracker.cancel(seconds_since_t0());
      } else {
        tracker.fail("timeout", "no response.done within the request timeout", seconds_since_t0());
      }
      conn->enqueue(build_ws_cancel(id));
    }
  }

  void cancel_all(const std::string& reason) override {
    cancel_reason_ = reason;
    for (auto& c : conns_) {
      if (c) c->cancel_all(reason);
    }
  }

  void close() override {
    for (auto& c : conns_) {
      if (c) c->close();
    }
  }

  int64_t connections_opened() const override { return connections_opened_; }

 private:
  asio::any_io_executor ex_;
  ClientOptions options_;
  std::vector<std::shared_ptr<WsConnection>> conns_;
  size_t next_conn_ = 0;
  uint64_t next_id_ = 0;
  int64_t connections_opened_ = 0;
  std::string cancel_reason_;
};

}  // namespace

std::unique_ptr<StreamClient> make_ws_client(asio::any_io_executor ex, const ClientOptions& options) {
  return std::make_unique<WsClient>(std::move(ex), options);
}

}  // namespace aurora::loadgen
