#include "http_session.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "aurora/config/protocol/requests.hpp"
#include "aurora/config/protocol/sse.hpp"
#include "aurora_routes.hpp"
#include "http_framing.hpp"
#include "log.hpp"
#include "routes.hpp"
#include "ws_session.hpp"

namespace aurora::server {

namespace http = beast::http;
using protocol::ApiError;
using std::chrono::milliseconds;

namespace {

constexpr size_t kReadChunk = 4096;
constexpr milliseconds kReserveFirstByteTimeout{2000};

// The routes a reserve connection serves: liveness, metrics and the model list, which probes and
// scrapers need most when the server is full.
bool is_probe_route(std::string_view path, http::verb method) {
  if (method != http::verb::get && method != http::verb::head) return false;
  return path == "/health" || path == "/metrics" || path == "/v1/models" || path.rfind("/v1/models/", 0) == 0;
}

// Outcomes that mean "the peer is gone or we are stopping": end the session quietly.
bool is_disconnect(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::connection_aborted || ec == net::error::broken_pipe || ec == net::error::operation_aborted ||
         ec == net::error::timed_out || ec == net::error::bad_descriptor || ec == net::error::not_connected;
}

std::pair<std::string, std::string> split_target(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {std::string(target), {}};
  return {std::string(target.substr(0, q)), std::string(target.substr(q + 1))};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

struct RouteInfo {
  std::string_view path;
  http::verb method;
};
constexpr RouteInfo kBuiltinRoutes[] = {
    {"/health", http::verb::get},          {"/metrics", http::verb::get},
    {"/v1/models", http::verb::get},       {"/tokenize", http::verb::post},
    {"/detokenize", http::verb::post},     {"/v1/chat/completions", http::verb::post},
    {"/v1/completions", http::verb::post}, {"/v1/ws", http::verb::get},
    {"/v1/aurora/plan", http::verb::get},  {"/v1/aurora/replan", http::verb::post},
    {"/dashboard", http::verb::get},
};

ApiError timeout_error(const char* what) {
  ApiError e;
  e.status = 408;
  e.message = std::string("timed out reading the request ") + what;
  e.code = "request_timeout";
  return e;
}

// Keeps the open-streams gauge exact whichever way a generation ends.
class StreamGauge {
 public:
  explicit StreamGauge(Metrics& m) : m_(m) { m_.streams_open.fetch_add(1, std::memory_order_relaxed); }
  ~StreamGauge() { m_.streams_open.fetch_sub(1, std::memory_order_relaxed); }
  StreamGauge(const StreamGauge&) = delete;
  StreamGauge& operator=(const StreamGauge&) = delete;

 private:
  Metrics& m_;
};

}  // namespace

HttpSession::HttpSession(tcp::socket socket, std::shared_ptr<ServerState> state, bool reserve)
    : stream_(std::move(socket)),
      buffer_(static_cast<size_t>(state->config.max_header_bytes + state->config.max_body_bytes) + 64 * 1024),
      state_(std::move(state)),
      reserve_(reserve),
      monitor_timer_(stream_.get_executor()),
      read_deadline_(stream_.get_executor()) {
  state_->metrics.connections_open.fetch_add(1, std::memory_order_relaxed);
}

HttpSession::~HttpSession() { state_->metrics.connections_open.fetch_sub(1, std::memory_order_relaxed); }

awaitable<void> HttpSession::run(std::shared_ptr<HttpSession> self) {
  try {
    co_await self->serve();
  } catch (const std::exception& e) {
    // A bug in one session must not take the others down: log it, drop the connection.
    log_error(std::string("session failed: ") + e.what());
    if (self->active_ != nullptr) self->active_->cancel(Generation::CancelCause::kClientGone);
  }
  self->close_socket();
}

void HttpSession::stop(StopMode mode) {
  stop_requested_ = true;
  if (ws_) {
    ws_->stop(mode);
    return;
  }
  if (mode == StopMode::kForce) {
    on_peer_gone();  // ends a running stream's loop at once and cancels its engine requests
    close_socket();
  } else if (phase_ == Phase::kIdle && requests_served_ > 0) {
    stream_.cancel();  // ends the keep-alive wait (a new connection still gets its answer)
  }
}

void HttpSession::close_socket() {
  if (ws_) return;  // the stream now belongs to the WebSocket session
  boost::system::error_code ignored;
  auto& socket = stream_.socket();
  if (!socket.is_open()) return;
  // The peer may be gone already; a failed shutdown changes nothing.
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

awaitable<void> HttpSession::serve() {
  const auto& config = state_->config;
  for (int served = 0;; ++served) {
    requests_served_ = served;
    phase_ = Phase::kIdle;
    if (buffer_.size() == 0) {
      // Draining: a kept-alive connection closes, but a new one still gets its 503 answer.
      if (served > 0 && (stop_requested_ || state_->draining.load())) co_return;
      // Wait for the first byte of the (next) request. A probe sends its request at once: a reserve
      // connection that stays silent is closed soon, so idle sockets cannot hold the reserve.
      stream_.expires_after(reserve_ ? std::min(milliseconds(config.header_timeout_ms), kReserveFirstByteTimeout)
                                     : milliseconds(config.idle_timeout_ms));
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_tuple);
      if (ec) co_return;  // idle timeout, peer closed, or asked to stop
      buffer_.commit(n);
    }
    phase_ = Phase::kReading;
    request_start_ = runtime::Clock::now();
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config.max_header_bytes));
    parser.body_limit(static_cast<std::uint64_t>(config.max_body_bytes));
    stream_.expires_never();
    arm_read_deadline(milliseconds(config.header_timeout_ms));
    auto [hec, hn] = co_await http::async_read_header(stream_, buffer_, parser, use_tuple);
    disarm_read_deadline();
    // The X-Request-Id of the fields read so far (a header refused part-way still names its
    // request when the field came early), else a generated one.
    const auto request_id_field = parser.get()["X-Request-Id"];
    const std::string request_id =
        is_safe_request_id(request_id_field) ? std::string(request_id_field) : generate_request_id();
    if (hec && read_timed_out()) {
      const Reply reply = error_reply(timeout_error("header"), false);
      co_await write_reply(reply, 11, request_id);
      co_return;
    }
    if (hec) {
      if (!is_disconnect(hec)) {
        const Reply reply = error_reply(error_for_parse_failure(hec), false);
        co_await write_reply(reply, 11, request_id);
      }
      co_return;
    }
    const auto& header = parser.get();
    const unsigned version = header.version() == 10 ? 10 : 11;
    if (auto rejected = check_request_header(header.base(), config, state_->hosts)) {
      const Reply reply = error_reply(*rejected, false);
      co_await write_reply(reply, version, request_id);
      co_return;
    }
    if (!parser.is_done()) {
      if (iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        stream_.expires_after(milliseconds(config.write_timeout_ms));
        auto [cec, cn] = co_await http::async_write(stream_, cont, use_tuple);
        if (cec) co_return;
      }
      const auto deadline = std::chrono::steady_clock::now() + milliseconds(config.body_total_timeout_ms);
      while (!parser.is_done()) {
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
        boost::system::error_code bec = beast::error::timeout;
        bool timed_out = true;
        if (left.count() > 0) {
          arm_read_deadline(std::min(left, milliseconds(config.body_timeout_ms)));
          auto [read_ec, read_n] = co_await http::async_read_some(stream_, buffer_, parser, use_tuple);
          disarm_read_deadline();
          bec = read_ec;
          timed_out = bec && read_timed_out();
        }
        if (timed_out) {
          const Reply reply = error_reply(timeout_error("body"), false);
          co_await write_reply(reply, version, request_id);
          co_return;
        }
        if (bec) {
          if (!is_disconnect(bec)) {
            const Reply reply = error_reply(error_for_parse_failure(bec), false);
            co_await write_reply(reply, version, request_id);
          }
          co_return;
        }
      }
    }
    stream_.expires_never();
    Request request = parser.release();
    // An absolute-form target (its host was checked above) is routed by its path and query.
    if (auto absolute = split_absolute_target(request.target())) request.target(absolute->origin_form);
    const bool keep_alive = request.keep_alive() && served + 1 < config.max_requests_per_connection;
    phase_ = Phase::kHandling;
    current_request_ = &request;
    const bool keep = co_await handle(request, request_id, keep_alive, request_start_);
    current_request_ = nullptr;
    if (!keep || stop_requested_) co_return;
  }
}

HttpSession::Reply HttpSession::error_reply(const ApiError& error, bool keep_alive) {
  Reply r;
  r.response = error_response(error);
  r.keep_alive = keep_alive;
  r.retry_after_s = error.retry_after_seconds;
  return r;
}

HttpSession::Decision HttpSession::decide(const Request& request, bool keep_alive) const {
  Decision d = route(request, keep_alive);
  if (reserve_) d.reply.keep_alive = false;  // one request: the reserve frees up at once
  // HEAD: the GET answer's status and headers (Content-Length included), never a body (RFC 9110).
  d.reply.omit_body = request.method() == http::verb::head;
  return d;
}

HttpSession::Decision HttpSession::route(const Request& request, bool keep_alive) const {
  const auto& config = state_->config;
  const auto [path, query] = split_target(request.target());
  // HEAD is served wherever GET is (write_reply drops the body).
  const bool head = request.method() == http::verb::head;
  const http::verb method = head ? http::verb::get : request.method();
  Decision d;
  d.reply.keep_alive = keep_alive;
  auto refuse = [&](const ApiError& e, bool keep) {
    d.reply = error_reply(e, keep);
    return d;
  };
  auto not_allowed = [&](std::string allow) {
    ApiError e =
        ApiError::invalid_request("method " + std::string(request.method_string()) + " is not allowed on " + path);
    e.status = 405;
    e.code = "method_not_allowed";
    refuse(e, keep_alive);
    d.reply.allow = std::move(allow);
    return d;
  };
  if (reserve_ && !is_probe_route(path, method)) {
    state_->metrics.count_rejection(RejectReason::kTooManyConnections);
    return refuse(ApiError::unavailable("too many open connections (this one, from the reserve, serves only /health, "
                                        "/metrics and /v1/models)",
                                        "too_many_connections", config.retry_after_s),
                  false);
  }
  // One gate in front of every route but liveness and the dashboard's static page (it holds no
  // data: its requests for the plan carry the key), WebSocket upgrades included.
  if (!config.api_key.empty() && path != "/health" && path != "/dashboard" &&
      !bearer_matches(request[http::field::authorization], config.api_key)) {
    refuse(ApiError::unauthorized(), keep_alive);
    d.reply.authenticate = true;
    return d;
  }
  const bool draining = state_->draining.load();
  auto engine = state_->engine();
  if (path == "/health" && method == http::verb::get) {
    d.reply.response = health_route(*state_, engine.get());
    d.reply.keep_alive = keep_alive && !draining;
    return d;
  }
  if (path == "/metrics" && method == http::verb::get) {
    d.reply.response = metrics_route(*state_, engine.get());
    d.reply.keep_alive = keep_alive && !draining;
    return d;
  }
  if (draining) {
    state_->metrics.count_rejection(RejectReason::kDraining);
    return refuse(ApiError::unavailable("The server is shutting down.", "server_draining", config.retry_after_s),
                  false);
  }
  for (const auto& route : kBuiltinRoutes) {
    if (path != route.path) continue;
    // A WebSocket upgrade is a GET with a body-less 101: HEAD has no meaning there.
    const bool websocket = path == "/v1/ws";
    if (method != route.method || (head && websocket)) {
      return not_allowed(route.method == http::verb::post ? "POST" : websocket ? "GET" : "GET, HEAD");
    }
    if (path == "/v1/chat/completions") {
      d.action = Action::kChat;
      return d;
    }
    if (path == "/v1/completions") {
      d.action = Action::kCompletion;
      return d;
    }
    if (path == "/dashboard") {  // a static page: it shows "loading" itself
      d.reply.response = dashboard_route();
      return d;
    }
    if (!engine || !engine->ready()) {
      state_->metrics.count_rejection(RejectReason::kLoading);
      return refuse(ApiError::unavailable("The model is loading.", "model_loading", config.retry_after_s), keep_alive);
    }
    if (websocket) {
      if (!beast::websocket::is_upgrade(request)) {
        return refuse(ApiError::invalid_request("/v1/ws is a WebSocket endpoint: send an Upgrade request"), keep_alive);
      }
      d.action = Action::kWebSocket;
      return d;
    }
    if (path == "/v1/models") d.reply.response = models_route(*state_, *engine);
    if (path == "/tokenize") d.reply.response = tokenize_route(*state_, *engine, request.body());
    if (path == "/detokenize") d.reply.response = detokenize_route(*state_, *engine, request.body());
    if (path == "/v1/aurora/plan") d.reply.response = plan_route(*engine);
    if (path == "/v1/aurora/replan") d.reply.response = replan_route(*engine, request.body());
    return d;
  }
  // GET /v1/models/{id} (the OpenAI SDK's models.retrieve): the id is percent-decoded and may hold
  // '/' ("org/model"), as the SDKs send it.
  constexpr std::string_view kModelPrefix = "/v1/models/";
  if (path.size() > kModelPrefix.size() && path.compare(0, kModelPrefix.size(), kModelPrefix) == 0) {
    if (method != http::verb::get) return not_allowed("GET, HEAD");
    if (!engine || !engine->ready()) {
      state_->metrics.count_rejection(RejectReason::kLoading);
      return refuse(ApiError::unavailable("The model is loading.", "model_loading", config.retry_after_s), keep_alive);
    }
    const auto id = percent_decode(std::string_view(path).substr(kModelPrefix.size()));
    d.reply.response = model_route(*state_, *engine, id ? *id : std::string(path.substr(kModelPrefix.size())));
    return d;
  }
  std::string custom_methods;  // the methods registered on this path, for a 405's Allow
  const CustomRoute* get_route = nullptr;
  for (const auto& route : state_->routes) {
    if (route.path != path) continue;
    custom_methods += (custom_methods.empty() ? "" : ", ") + route.method;
    if (route.method == "GET") get_route = &route;
    if (route.method == request.method_string()) return custom(route, request, path, query, keep_alive);
  }
  if (head && get_route != nullptr) return custom(*get_route, request, path, query, keep_alive);
  if (!custom_methods.empty()) {
    if (get_route != nullptr) custom_methods += ", HEAD";
    return not_allowed(custom_methods);
  }
  return refuse(ApiError::not_found("no route for " + std::string(request.method_string()) + " " + path.substr(0, 128)),
                keep_alive);
}

HttpSession::Decision HttpSession::custom(const CustomRoute& route, const Request& request, const std::string& path,
                                          const std::string& query, bool keep_alive) const {
  HttpRequestView view;
  view.method = std::string(request.method_string());
  view.path = path;
  view.query = query;
  view.body = request.body();
  for (const auto& field : request) {
    std::string name(field.name_string());
    for (auto& c : name) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (name == "authorization") continue;  // handlers never see the key
    view.headers[name] = std::string(field.value());
  }
  Decision d;
  d.reply.keep_alive = keep_alive;
  d.reply.response = route.handler(view, state_->engine().get());
  return d;
}

awaitable<bool> HttpSession::handle(Request& request, const std::string& request_id, bool keep_alive,
                                    runtime::Clock::time_point arrival) {
  const unsigned version = request.version() == 10 ? 10 : 11;
  const Decision decision = decide(request, keep_alive);
  switch (decision.action) {
    case Action::kReply: {
      const bool written = co_await write_reply(decision.reply, version, request_id);
      co_return written&& decision.reply.keep_alive;
    }
    case Action::kChat:
    case Action::kCompletion: {
      const auto endpoint =
          decision.action == Action::kChat ? protocol::Endpoint::kChat : protocol::Endpoint::kCompletion;
      co_return co_await serve_generation(request, endpoint, request_id, keep_alive, arrival);
    }
    case Action::kWebSocket: {
      phase_ = Phase::kWebSocket;
      ws_ = std::make_shared<WsSession>(std::move(stream_), state_, std::move(request));
      if (stop_requested_) ws_->stop(StopMode::kDrain);
      std::shared_ptr<WsSession> ws = ws_;
      co_await WsSession::run(std::move(ws));
      co_return false;
    }
  }
  co_return false;
}

std::optional<HttpSession::Reply> HttpSession::prepare_generation(const Request& request, protocol::Endpoint endpoint,
                                                                  const std::string& request_id, bool keep_alive,
                                                                  runtime::Clock::time_point arrival,
                                                                  std::optional<Generation>& generation, bool& stream) {
  const auto& config = state_->config;
  auto engine = state_->engine();
  if (!engine || !engine->ready()) {
    state_->metrics.count_rejection(RejectReason::kLoading);
    return error_reply(ApiError::unavailable("The model is loading.", "model_loading", config.retry_after_s),
                       keep_alive);
  }
  // Every validation happens here, before the first byte of the response.
  const RequestInfo info{request_id, arrival};
  std::optional<Expected<GenerationPlan>> plan;
  if (endpoint == protocol::Endpoint::kChat) {
    auto parsed = protocol::parse_chat_request(request.body(), config.limits);
    if (!parsed.ok()) return error_reply(ApiError::from(parsed.error()), keep_alive);
    stream = parsed->sampling.stream;
    plan.emplace(plan_chat(*parsed, *engine, info));
  } else {
    auto parsed = protocol::parse_completion_request(request.body(), config.limits);
    if (!parsed.ok()) return error_reply(ApiError::from(parsed.error()), keep_alive);
    stream = parsed->sampling.stream;
    plan.emplace(plan_completion(*parsed, *engine, info));
  }
  if (!plan->ok()) return error_reply(plan->error(), keep_alive);
  channel_ = std::make_shared<TokenChannel>(stream_.get_executor(), static_cast<size_t>(config.stream_queue_events),
                                            static_cast<size_t>(config.stream_max_pending_bytes));
  generation.emplace(std::move(plan->value()), stream ? Generation::Wire::kSse : Generation::Wire::kJson);
  if (auto rejected = generation->submit(engine, channel_, 0, state_->metrics, config)) {
    channel_->close();
    channel_.reset();
    generation.reset();
    return error_reply(*rejected, keep_alive);
  }
  return std::nullopt;
}

awaitable<bool> HttpSession::serve_generation(Request& request, protocol::Endpoint endpoint,
                                              const std::string& request_id, bool keep_alive,
                                              runtime::Clock::time_point arrival) {
  const unsigned version = request.version() == 10 ? 10 : 11;
  std::optional<Generation> generation;
  bool stream = false;
  const std::optional<Reply> refused =
      prepare_generation(request, endpoint, request_id, keep_alive, arrival, generation, stream);
  if (refused) {
    const bool written = co_await write_reply(*refused, version, request_id);
    co_return written && refused->keep_alive;
  }
  StreamGauge gauge(state_->metrics);
  active_ = &*generation;
  bool keep = false;
  try {
    keep = co_await run_generation(*generation, stream, version, request_id, keep_alive);
  } catch (...) {
    generation->cancel(Generation::CancelCause::kClientGone);
    active_ = nullptr;
    channel_->close();
    throw;
  }
  active_ = nullptr;
  channel_->close();
  channel_.reset();
  co_return keep && !state_->draining.load();
}

awaitable<bool> HttpSession::run_generation(Generation& generation, bool stream, unsigned version,
                                            const std::string& request_id, bool keep_alive) {
  const auto& config = state_->config;
  const bool chunked = version >= 11;
  if (stream) {
    http::response<http::empty_body> res{http::status::ok, version};
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.set("X-Accel-Buffering", "no");  // nginx: pass events through unbuffered
    res.set("X-Request-Id", request_id);
    if (chunked) res.chunked(true);
    res.keep_alive(chunked && keep_alive && !state_->draining.load());
    http::response_serializer<http::empty_body> serializer{res};
    stream_.expires_after(milliseconds(config.write_timeout_ms));
    auto [ec, n] = co_await http::async_write_header(stream_, serializer, use_tuple);
    if (ec) {
      generation.cancel(Generation::CancelCause::kClientGone);
      state_->metrics.client_disconnects.fetch_add(1, std::memory_order_relaxed);
      co_return false;
    }
    state_->metrics.count_response(200);
  }
  start_monitor();
  WireOutput out;
  generation.start(out);
  std::vector<StreamEvent> events;
  bool write_failed = false;
  // Waits wake at least every keep-alive period (streams) and often enough to notice a request
  // that got no token for no_progress_timeout_ms (a wedged engine).
  const int64_t no_progress_ms = config.no_progress_timeout_ms;
  int64_t period_ms = stream ? config.sse_keepalive_ms : 60'000;
  if (no_progress_ms > 0) period_ms = std::min<int64_t>(period_ms, std::max<int64_t>(10, no_progress_ms / 4));
  const milliseconds wait_period(period_ms);
  auto last_event = std::chrono::steady_clock::now();
  auto last_keepalive = last_event;
  for (;;) {
    if (stream && !out.bytes.empty()) {
      if (!co_await write_stream_bytes(out.bytes, chunked)) {
        write_failed = true;
        break;
      }
      out.bytes.clear();
    }
    if (generation.finished() || peer_gone_) break;
    const auto waited = co_await channel_->wait(wait_period);
    if (peer_gone_) break;
    const auto now = std::chrono::steady_clock::now();
    if (waited == TokenChannel::WaitResult::kTimeout) {
      const double silent_s = std::chrono::duration<double>(now - last_event).count();
      if (no_progress_ms > 0 && silent_s * 1000.0 >= static_cast<double>(no_progress_ms) &&
          state_->engine_stalled_for(no_progress_ms)) {
        generation.stall(silent_s, out);
        state_->metrics.no_progress_cancels.fetch_add(1, std::memory_order_relaxed);
        if (!stream) break;  // the JSON error reply is written below
        continue;            // writes the error event and [DONE], then ends
      }
      if (stream && now - last_keepalive >= milliseconds(config.sse_keepalive_ms)) {
        out.bytes.assign(protocol::kSseKeepAlive);
        last_keepalive = now;
      }
      continue;
    }
    channel_->pop_all(events);
    if (!events.empty()) last_event = last_keepalive = now;
    for (const auto& e : events) generation.on_event(e, out);
  }
  if (write_failed || peer_gone_) {
    // Either way the client will not read the rest: free the engine's work now.
    generation.cancel(Generation::CancelCause::kClientGone);
    state_->metrics.client_disconnects.fetch_add(1, std::memory_order_relaxed);
    co_await stop_monitor();
    co_return false;
  }
  co_await stop_monitor();
  if (stream) {
    log_access(current_request_, 200, 0, request_id);
    if (!chunked) co_return false;
    static constexpr std::string_view kLastChunk = "0\r\n\r\n";
    const net::const_buffer last_chunk(kLastChunk.data(), kLastChunk.size());
    stream_.expires_after(milliseconds(config.write_timeout_ms));
    auto [ec, n] = co_await net::async_write(stream_, last_chunk, use_tuple);
    co_return !ec && keep_alive;
  }
  Reply reply;
  reply.response = generation.json_response();
  reply.keep_alive = keep_alive;
  reply.retry_after_s = reply.response.status == 503 ? config.retry_after_s : 0;
  const bool written = co_await write_reply(reply, version, request_id);
  co_return written&& keep_alive;
}

awaitable<bool> HttpSession::write_stream_bytes(const std::string& payload, bool chunked) {
  stream_.expires_after(milliseconds(state_->config.write_timeout_ms));
  if (!chunked) {
    const net::const_buffer data = net::buffer(payload);
    auto [ec, n] = co_await net::async_write(stream_, data, use_tuple);
    co_return !ec;
  }
  char head[24];
  const int len = std::snprintf(head, sizeof(head), "%zx\r\n", payload.size());
  const std::array<net::const_buffer, 3> buffers{net::buffer(head, static_cast<size_t>(len)), net::buffer(payload),
                                                 net::buffer("\r\n", 2)};
  auto [ec, n] = co_await net::async_write(stream_, buffers, use_tuple);
  co_return !ec;
}

awaitable<bool> HttpSession::write_reply(const Reply& reply, unsigned version, const std::string& request_id) {
  http::response<http::string_body> res{static_cast<http::status>(reply.response.status), version};
  res.set(http::field::content_type, reply.response.content_type);
  if (!request_id.empty()) res.set("X-Request-Id", request_id);
  if (reply.retry_after_s > 0) res.set(http::field::retry_after, std::to_string(reply.retry_after_s));
  if (reply.authenticate) res.set(http::field::www_authenticate, "Bearer");
  if (!reply.allow.empty()) res.set(http::field::allow, reply.allow);
  res.keep_alive(reply.keep_alive);
  // Error bodies name the request (the header, the access log line and the body agree).
  res.body() = reply.response.status >= 400 ? add_request_id(reply.response.body, request_id) : reply.response.body;
  res.prepare_payload();
  if (reply.omit_body) {
    // HEAD: Content-Length says what GET would send; the serializer then writes no body bytes.
    const size_t body_bytes = res.body().size();
    res.body().clear();
    res.content_length(body_bytes);
  }
  stream_.expires_after(milliseconds(state_->config.write_timeout_ms));
  auto [ec, n] = co_await http::async_write(stream_, res, use_tuple);
  state_->metrics.count_response(reply.response.status);
  log_access(current_request_, reply.response.status, reply.response.body.size(), request_id);
  if (!reply.keep_alive && !ec) {
    // Half-close after the response so the client reads it before the connection goes.
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  co_return !ec;
}

void HttpSession::start_monitor() {
  peer_gone_ = false;
  monitor_stop_ = false;
  monitor_running_ = true;
  net::co_spawn(stream_.get_executor(), monitor(shared_from_this()), [](std::exception_ptr error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_error(std::string("connection monitor failed: ") + e.what());
    }
  });
}

awaitable<void> HttpSession::monitor(std::shared_ptr<HttpSession> self) {
  auto& socket = self->stream_.socket();
  while (!self->monitor_stop_) {
    // Bytes that arrive now belong to a pipelined next request: keep them, within the buffer's cap.
    const size_t room = std::min(kReadChunk, self->buffer_.max_size() - self->buffer_.size());
    if (room == 0) break;
    auto [ec, n] = co_await socket.async_read_some(self->buffer_.prepare(room), use_tuple);
    if (self->monitor_stop_) {
      if (!ec) self->buffer_.commit(n);
      break;
    }
    if (ec) {
      // EOF (including a half-close), reset, or TCP_USER_TIMEOUT/keep-alive expiry.
      self->on_peer_gone();
      break;
    }
    self->buffer_.commit(n);
  }
  self->monitor_running_ = false;
  self->monitor_timer_.cancel();
}

awaitable<void> HttpSession::stop_monitor() {
  if (!monitor_running_) co_return;
  monitor_stop_ = true;
  boost::system::error_code ignored;
  stream_.socket().cancel(ignored);
  while (monitor_running_) {
    monitor_timer_.expires_after(std::chrono::seconds(5));
    co_await monitor_timer_.async_wait(use_tuple);
  }
}

void HttpSession::arm_read_deadline(std::chrono::milliseconds timeout) {
  read_timed_out_ = false;
  const uint64_t seq = ++read_deadline_seq_;
  read_deadline_.expires_after(timeout);
  read_deadline_.async_wait([weak = weak_from_this(), seq](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->read_deadline_seq_ != seq) return;  // disarmed, or a later deadline
    self->read_timed_out_ = true;
    boost::system::error_code ignored;
    self->stream_.socket().cancel(ignored);
  });
}

void HttpSession::disarm_read_deadline() {
  ++read_deadline_seq_;
  read_deadline_.cancel();
}

void HttpSession::on_peer_gone() {
  peer_gone_ = true;
  if (active_ != nullptr) active_->cancel(Generation::CancelCause::kClientGone);
  if (channel_) channel_->wake();
}

void HttpSession::log_access(const Request* request, int status, size_t bytes, const std::string& request_id) {
  if (!state_->config.access_log) return;
  const double ms = std::chrono::duration<double, std::milli>(runtime::Clock::now() - request_start_).count();
  char line[64];
  std::snprintf(line, sizeof(line), " %d %zu %.1fms ", status, bytes, ms);
  std::string text = request != nullptr
                         ? std::string(request->method_string()) + " " + std::string(request->target().substr(0, 256))
                         : std::string("-");
  log_info(text + line + request_id);
}

}  // namespace aurora::server
