// The SSE client over HTTP/1.1 with a keep-alive connection pool, and plain GETs.
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "asio_util.hpp"
#include "aurora/loadgen/client.hpp"
#include "aurora/loadgen/sse_parser.hpp"
#include "response_tracker.hpp"

namespace aurora::loadgen {

std::unique_ptr<StreamClient> make_ws_client(boost::asio::any_io_executor ex, const ClientOptions& options);

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using detail::use_tuple;
using tcp = asio::ip::tcp;

constexpr const char* kUserAgent = "aurora-loadgen/0.1";
constexpr size_t kMaxErrorBody = 64 * 1024;
// InFlight::cancel_reason once the client cancelled the request itself (the record says
// `cancelled`, this reason only stops retries and connection reuse).
constexpr const char* kClientCancelled = "cancelled";

SteadyClock::duration to_duration(double s) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
}

std::string host_header(const Target& t) {
  if (t.host.find(':') != std::string::npos) return "[" + t.host + "]:" + t.port;  // IPv6 literal
  return t.host + ":" + t.port;
}

struct Connection {
  explicit Connection(asio::any_io_executor ex) : stream(ex) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  int64_t uses = 0;
};

asio::awaitable<Result<std::unique_ptr<Connection>>> connect(asio::any_io_executor ex, const Target& target,
                                                             SteadyClock::time_point deadline) {
  tcp::resolver resolver(ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(target.host, target.port, use_tuple);
  if (rec) co_return Error::make(ErrorCode::kUnavailable, "resolve " + target.host + ": " + rec.message());
  auto conn = std::make_unique<Connection>(ex);
  conn->stream.expires_at(deadline);
  auto [cec, ep] = co_await conn->stream.async_connect(endpoints, use_tuple);
  if (cec) {
    co_return Error::make(ErrorCode::kUnavailable, "connect " + host_header(target) + ": " + cec.message());
  }
  conn->stream.socket().set_option(tcp::no_delay(true));
  co_return conn;
}

// Reads the rest of a (short) response body into a string, for error messages.
asio::awaitable<std::string> read_small_body(Connection& conn, http::response_parser<http::buffer_body>& parser) {
  std::string out;
  char buf[4096];
  while (!parser.is_done() && out.size() < kMaxErrorBody) {
    parser.get().body().data = buf;
    parser.get().body().size = sizeof buf;
    auto [ec, n] = co_await http::async_read_some(conn.stream, conn.buffer, parser, use_tuple);
    out.append(buf, sizeof buf - parser.get().body().size);
    if (ec && ec != http::error::need_buffer) break;
  }
  co_return out;
}

class SseClient final : public StreamClient {
 public:
  SseClient(asio::any_io_executor ex, ClientOptions options) : ex_(std::move(ex)), options_(std::move(options)) {
    *t0_ = options_.t0;
  }

  asio::awaitable<void> send(const RequestSpec& spec, RequestRecord& record,
                             std::optional<double> cancel_after_s) override {
    detail::ResponseTracker tracker(record, options_.output_token_fallback, options_.keep_text);
    record.input_tokens = spec.input_tokens_estimate;
    record.kind = spec.kind;
    const auto deadline = SteadyClock::now() + to_duration(options_.request_timeout_s);
    http::request<http::string_body> req{http::verb::post, options_.target.path_prefix + options_.target.endpoint, 11};
    req.set(http::field::host, host_header(options_.target));
    req.set(http::field::user_agent, kUserAgent);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    if (!options_.target.api_key.empty()) req.set(http::field::authorization, "Bearer " + options_.target.api_key);
    req.body() = build_request_body(options_.api, spec, options_.sampling);
    req.prepare_payload();

    const uint64_t id = next_id_++;
    InFlight& flight = in_flight_[id];
    flight.id = id;
    flight.tracker = &tracker;
    flight.cancel_after_s = cancel_after_s;
    record.start_s = seconds_since_t0();
    co_await run(req, deadline, tracker, flight);
    if (!tracker.finished()) tracker.fail("internal", "request ended without a result", seconds_since_t0());
    in_flight_.erase(id);  // also drops the cancel timer: a late expiry finds no entry
  }

  void cancel_all(const std::string& reason) override {
    for (auto& [id, f] : in_flight_) {
      if (f.cancel_reason.empty()) f.cancel_reason = reason;
      if (f.conn) f.conn->stream.cancel();
    }
  }

  void close() override {
    for (auto& c : idle_) {
      beast::error_code ec;
      c->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      c->stream.close();
    }
    idle_.clear();
  }

  int64_t connections_opened() const override { return connections_opened_; }

 private:
  struct InFlight {
    uint64_t id = 0;
    Connection* conn = nullptr;
    std::string cancel_reason;
    detail::ResponseTracker* tracker = nullptr;
    std::optional<double> cancel_after_s;  // --request-cancellation-delay, for a chosen request
    std::unique_ptr<asio::steady_timer> cancel_timer;
    uint64_t timer_generation = 0;  // an expiry of an earlier arming is ignored
  };

  // The request has just been written in full: start its cancellation timer, if it has one.
  void arm_cancel_timer(InFlight& flight) {
    if (!flight.cancel_after_s) return;
    if (!flight.cancel_timer) flight.cancel_timer = std::make_unique<asio::steady_timer>(ex_);
    const uint64_t generation = ++flight.timer_generation;
    flight.cancel_timer->expires_after(to_duration(*flight.cancel_after_s));
    flight.cancel_timer->async_wait([this, id = flight.id, generation](const boost::system::error_code& ec) {
      if (ec) return;
      auto it = in_flight_.find(id);
      if (it == in_flight_.end() || it->second.timer_generation != generation) return;
      cancel_by_client(it->second);
    });
  }

  void disarm_cancel_timer(InFlight& flight) {
    ++flight.timer_generation;
    if (flight.cancel_timer) flight.cancel_timer->cancel();
  }

  // What a browser tab that is closed does: the connection goes away and the server sees a
  // disconnect. The coroutine reading it wakes with an error and drops the connection.
  void cancel_by_client(InFlight& flight) {
    if (flight.tracker->finished() || !flight.cancel_reason.empty()) return;
    flight.tracker->cancel(seconds_since_t0());
    flight.cancel_reason = kClientCancelled;
    if (flight.conn) flight.conn->stream.close();
  }

  asio::awaitable<Result<std::unique_ptr<Connection>>> acquire(SteadyClock::time_point deadline) {
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      co_return c;
    }
    auto c = co_await connect(ex_, options_.target, deadline);
    if (c) ++connections_opened_;
    co_return c;
  }

  void release(std::unique_ptr<Connection> conn, bool reusable) {
    if (!reusable) return;
    conn->stream.expires_never();
    ++conn->uses;
    idle_.push_back(std::move(conn));
  }

  std::string failure_reason(const beast::error_code& ec, const InFlight& flight) const {
    if (!flight.cancel_reason.empty()) return flight.cancel_reason;
    if (ec == beast::error::timeout) return "timeout";
    return "connection_closed";
  }

  asio::awaitable<void> run(http::request<http::string_body>& req, SteadyClock::time_point deadline,
                            detail::ResponseTracker& tracker, InFlight& flight) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto acquired = co_await acquire(deadline);
      if (!flight.cancel_reason.empty()) {
        tracker.fail(flight.cancel_reason, "cancelled before sending", seconds_since_t0());
        co_return;
      }
      if (!acquired) {
        const bool timed_out = SteadyClock::now() >= deadline;
        tracker.fail(timed_out ? "timeout" : "connect_failed", acquired.error().message, seconds_since_t0());
        co_return;
      }
      std::unique_ptr<Connection> conn = std::move(*acquired);
      flight.conn = conn.get();
      const bool reused = conn->uses > 0;
      conn->stream.expires_at(deadline);

      auto [wec, wn] = co_await http::async_write(conn->stream, req, use_tuple);
      if (!wec) arm_cancel_timer(flight);
      http::response_parser<http::buffer_body> parser;
      parser.body_limit(boost::none);
      beast::error_code hec = wec;
      if (!hec && !flight.cancel_reason.empty()) hec = asio::error::operation_aborted;
      if (!wec)
        std::tie(hec, std::ignore) = co_await http::async_read_header(conn->stream, conn->buffer, parser, use_tuple);
      if (hec) {
        flight.conn = nullptr;
        // A kept-alive connection the server closed meanwhile: try once more on a fresh one.
        if (reused && attempt == 0 && flight.cancel_reason.empty() && hec != beast::error::timeout) {
          disarm_cancel_timer(flight);  // it starts again once the retry is written
          continue;
        }
        tracker.fail(failure_reason(hec, flight), "before the response header: " + hec.message(), seconds_since_t0());
        co_return;
      }
      const int status = parser.get().result_int();
      if (status != 200) {
        std::string body = co_await read_small_body(*conn, parser);
        const double t = seconds_since_t0();
        auto err = parse_error_body(body);
        std::string detail = err ? detail::ResponseTracker::describe(*err) : body.substr(0, 200);
        tracker.fail("http_" + std::to_string(status), detail, t);
        flight.conn = nullptr;
        release(std::move(conn), parser.is_done() && parser.keep_alive());
        co_return;
      }
      const std::string content_type(parser.get()[http::field::content_type]);
      if (content_type.find("text/event-stream") == std::string::npos) {
        std::string body = co_await read_small_body(*conn, parser);
        tracker.fail("not_streaming", "Content-Type " + content_type + " instead of text/event-stream",
                     seconds_since_t0());
        flight.conn = nullptr;
        co_return;
      }
      const bool clean = co_await stream_body(*conn, parser, tracker, flight);
      flight.conn = nullptr;
      release(std::move(conn), clean && parser.is_done() && parser.keep_alive());
      co_return;
    }
  }

  // Reads SSE events until [DONE], the end of the body, an error event or a failure. Returns true
  // when the connection is left in a reusable state.
  asio::awaitable<bool> stream_body(Connection& conn, http::response_parser<http::buffer_body>& parser,
                                    detail::ResponseTracker& tracker, InFlight& flight) {
    SseParser sse;
    std::vector<SseEvent> events;
    char read_buf[8192];  // in the coroutine frame: one per request
    bool done_seen = false;
    double done_t = 0;
    while (!parser.is_done()) {
      // cancel_all() may land between two reads, when there is nothing to cancel: look first.
      if (!flight.cancel_reason.empty()) {
        tracker.fail(flight.cancel_reason, "cancelled while streaming", seconds_since_t0());
        co_return false;
      }
      parser.get().body().data = read_buf;
      parser.get().body().size = sizeof read_buf;
      auto [ec, n] = co_await http::async_read_some(conn.stream, conn.buffer, parser, use_tuple);
      if (ec == http::error::need_buffer) ec = {};
      const size_t got = sizeof read_buf - parser.get().body().size;
      const double t = seconds_since_t0();
      if (got > 0 && !done_seen) {
        events.clear();
        sse.feed(std::string_view(read_buf, got), events);
        if (sse.overflowed()) {
          tracker.fail("invalid_response", "an SSE event exceeded 16 MiB", t);
          co_return false;
        }
        for (const auto& ev : events) {
          if (ev.data == "[DONE]") {
            done_seen = true;
            done_t = t;
            break;
          }
          if (ev.event == "error") {
            auto err = parse_error_body(ev.data);
            tracker.fail("stream_error", err ? detail::ResponseTracker::describe(*err) : ev.data.substr(0, 200), t);
            co_return false;
          }
          auto chunk = parse_stream_chunk(ev.data);
          if (!chunk) {
            tracker.fail("invalid_response", chunk.error().message, t);
            co_return false;
          }
          if (!tracker.on_chunk(*chunk, t)) co_return false;
        }
        if (done_seen) {
          // The body's end usually arrives with [DONE]; wait for it briefly to keep the
          // connection, but the request itself is over.
          tracker.succeed(done_t);
          conn.stream.expires_after(std::chrono::seconds(1));
        }
      }
      if (ec) {
        if (done_seen) co_return false;
        if (!flight.cancel_reason.empty() || ec == beast::error::timeout) {
          tracker.fail(failure_reason(ec, flight), "while streaming: " + ec.message(), t);
        } else if (parser.is_done()) {
          break;
        } else {
          tracker.fail("connection_closed", "while streaming: " + ec.message(), t);
        }
        co_return false;
      }
    }
    const double t = seconds_since_t0();
    if (!done_seen) {
      // A stream without [DONE] (some native servers): the end of the body ends it.
      if (auto last = sse.finish(); last && last->data != "[DONE]") {
        auto chunk = parse_stream_chunk(last->data);
        if (chunk) tracker.on_chunk(*chunk, t);
      }
      tracker.succeed(t);
    }
    co_return true;
  }

  asio::any_io_executor ex_;
  ClientOptions options_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::unordered_map<uint64_t, InFlight> in_flight_;
  uint64_t next_id_ = 0;
  int64_t connections_opened_ = 0;
};

}  // namespace

std::unique_ptr<StreamClient> make_stream_client(asio::any_io_executor ex, const ClientOptions& options) {
  if (options.backend == Backend::kAuroraWs) return make_ws_client(std::move(ex), options);
  return std::make_unique<SseClient>(std::move(ex), options);
}

namespace {

asio::awaitable<Result<HttpResult>> simple_request(asio::any_io_executor ex, const Target& target, http::verb verb,
                                                   const std::string& path, const std::string* body, double timeout_s) {
  const auto deadline =
      SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(timeout_s));
  auto conn = co_await connect(ex, target, deadline);
  if (!conn) co_return conn.error();
  auto& c = **conn;
  http::request<http::string_body> req{verb, target.path_prefix + path, 11};
  req.set(http::field::host, host_header(target));
  req.set(http::field::user_agent, kUserAgent);
  req.set(http::field::connection, "close");
  if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *body;
  }
  req.prepare_payload();
  c.stream.expires_at(deadline);
  const std::string what = std::string(http::to_string(verb)) + " " + path + ": ";
  auto [wec, wn] = co_await http::async_write(c.stream, req, use_tuple);
  if (wec) co_return Error::make(ErrorCode::kUnavailable, what + wec.message());
  http::response_parser<http::string_body> parser;
  parser.body_limit(16u << 20);
  auto [rec, rn] = co_await http::async_read(c.stream, c.buffer, parser, use_tuple);
  if (rec) co_return Error::make(ErrorCode::kUnavailable, what + rec.message());
  beast::error_code ignored;
  c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  HttpResult out;
  out.status = parser.get().result_int();
  out.content_type = std::string(parser.get()[http::field::content_type]);
  out.body = std::move(parser.get().body());
  co_return out;
}

}  // namespace

asio::awaitable<Result<HttpResult>> http_get(asio::any_io_executor ex, const Target& target, const std::string& path,
                                             double timeout_s) {
  co_return co_await simple_request(std::move(ex), target, http::verb::get, path, nullptr, timeout_s);
}

asio::awaitable<Result<HttpResult>> http_post_json(asio::any_io_executor ex, const Target& target,
                                                   const std::string& path, const std::string& body, double timeout_s) {
  co_return co_await simple_request(std::move(ex), target, http::verb::post, path, &body, timeout_s);
}

}  // namespace aurora::loadgen
