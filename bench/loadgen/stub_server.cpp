#include "stub_server.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

namespace aurora::loadgen::stub {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

Clock::duration ms(double v) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(v));
}

struct Counters {
  std::atomic<int64_t> connections{0}, http_requests{0}, streams{0}, sse_disconnects{0}, ws_connections{0},
      ws_requests{0}, ws_cancels{0}, chunks_sent{0};
};

StubRequest read_request(const json::value& body, std::string path) {
  StubRequest r;
  r.path = std::move(path);
  r.chat = r.path != "/v1/completions";
  if (!body.is_object()) return r;
  const auto& o = body.as_object();
  if (auto* m = o.if_contains("model"); m && m->is_string()) r.model = std::string(m->as_string());
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto* v = o.if_contains(key); v && v->is_int64()) r.max_tokens = v->as_int64();
  }
  if (auto* so = o.if_contains("stream_options"); so && so->is_object()) {
    if (auto* u = so->as_object().if_contains("include_usage"); u && u->is_bool()) r.include_usage = u->as_bool();
  }
  if (auto* p = o.if_contains("prompt"); p && p->is_string()) r.prompt_text = std::string(p->as_string());
  if (auto* msgs = o.if_contains("messages"); msgs && msgs->is_array()) {
    for (const auto& m : msgs->as_array()) {
      if (!m.is_object()) continue;
      if (auto* c = m.as_object().if_contains("content"); c && c->is_string()) {
        if (!r.prompt_text.empty()) r.prompt_text += "\n\n";
        r.prompt_text += std::string(c->as_string());
      }
    }
  }
  return r;
}

std::string chunk_json(const StubRequest& r, const std::string& id, const std::string& model, const char* kind,
                       const std::string& text_json, const std::string& usage_json) {
  // kind: "content", "role", "finish", "usage"
  std::string out;
  out.reserve(200);
  if (r.chat) {
    out +=
        R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":0,"model":")" + model + R"(","choices":)";
    if (std::string(kind) == "usage") {
      out += "[],\"usage\":" + usage_json + "}";
    } else if (std::string(kind) == "role") {
      out += R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})";
    } else if (std::string(kind) == "finish") {
      out += R"([{"index":0,"delta":{},"finish_reason":"length"}]})";
    } else {
      out += R"([{"index":0,"delta":{"content":)" + text_json + R"(},"finish_reason":null}]})";
    }
  } else {
    out += R"({"id":")" + id + R"(","object":"text_completion","created":0,"model":")" + model + R"(","choices":)";
    if (std::string(kind) == "usage") {
      out += "[],\"usage\":" + usage_json + "}";
    } else if (std::string(kind) == "finish") {
      out += R"([{"index":0,"text":"","finish_reason":"length"}]})";
    } else {
      out += R"([{"index":0,"text":)" + text_json + R"(,"finish_reason":null}]})";
    }
  }
  return out;
}

std::string usage_json(const StubScript& s) {
  const int64_t completion = s.usage_completion_tokens.value_or(static_cast<int64_t>(s.chunk_offsets_ms.size()));
  return R"({"prompt_tokens":)" + std::to_string(s.usage_prompt_tokens) + R"(,"completion_tokens":)" +
         std::to_string(completion) + R"(,"total_tokens":)" + std::to_string(s.usage_prompt_tokens + completion) + "}";
}

// One step of a scripted stream.
struct Step {
  double offset_ms;
  enum class Kind { kRole, kContent, kPing, kError, kClose, kFinish, kUsage, kDone } kind;
};

std::vector<Step> timeline(const StubRequest& r, const StubScript& s) {
  std::vector<Step> steps;
  if (r.chat && s.role_chunk) steps.push_back({0, Step::Kind::kRole});
  for (double p : s.ping_offsets_ms) steps.push_back({p, Step::Kind::kPing});
  double last = 0;
  for (size_t i = 0; i < s.chunk_offsets_ms.size(); ++i) {
    if (s.error_after_chunks && i == *s.error_after_chunks) {
      steps.push_back({last, Step::Kind::kError});
      break;
    }
    if (s.close_after_chunks && i == *s.close_after_chunks) {
      steps.push_back({last, Step::Kind::kClose});
      break;
    }
    last = s.chunk_offsets_ms[i];
    steps.push_back({last, Step::Kind::kContent});
  }
  const bool cut = (s.error_after_chunks && *s.error_after_chunks <= s.chunk_offsets_ms.size()) ||
                   (s.close_after_chunks && *s.close_after_chunks <= s.chunk_offsets_ms.size());
  if (s.error_after_chunks && *s.error_after_chunks == s.chunk_offsets_ms.size())
    steps.push_back({last, Step::Kind::kError});
  if (s.close_after_chunks && *s.close_after_chunks == s.chunk_offsets_ms.size())
    steps.push_back({last, Step::Kind::kClose});
  if (!cut) {
    if (s.finish_chunk) steps.push_back({last, Step::Kind::kFinish});
    if (s.usage && r.include_usage) steps.push_back({last, Step::Kind::kUsage});
  }
  if (s.done && !(s.close_after_chunks && *s.close_after_chunks <= s.chunk_offsets_ms.size())) {
    steps.push_back({last, Step::Kind::kDone});
  }
  std::stable_sort(steps.begin(), steps.end(), [](const Step& a, const Step& b) { return a.offset_ms < b.offset_ms; });
  return steps;
}

}  // namespace

StubScript uniform_script(int64_t num_chunks, double first_ms, double interval_ms) {
  StubScript s;
  for (int64_t i = 0; i < num_chunks; ++i)
    s.chunk_offsets_ms.push_back(first_ms + interval_ms * static_cast<double>(i));
  return s;
}

struct StubServer::Impl {
  explicit Impl(StubServerOptions o) : options(std::move(o)), acceptor(ioc) {
    tcp::endpoint ep(asio::ip::make_address(options.host), options.port);
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
    if (!options.script) {
      options.script = [](const StubRequest& r) { return uniform_script(r.max_tokens > 0 ? r.max_tokens : 16, 0, 0); };
    }
  }

  StubServerOptions options;
  asio::io_context ioc;
  tcp::acceptor acceptor;
  uint16_t port = 0;
  std::vector<std::thread> threads;
  Counters counters;
  std::atomic<uint64_t> next_id{0};
  bool started = false;

  void spawn_listener() {
    asio::co_spawn(ioc, listen(), [](std::exception_ptr) {});
  }

  asio::awaitable<void> listen() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(ioc), use_tuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        continue;
      }
      ++counters.connections;
      auto session_ex = socket.get_executor();
      asio::co_spawn(session_ex, session(std::move(socket)), [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "stub server session: %s\n", ex.what());
        }
      });
    }
  }

  std::string metrics() {
    if (options.metrics_text) return options.metrics_text();
    return "# TYPE stub:requests_total counter\nstub:requests_total " + std::to_string(counters.http_requests.load()) +
           "\n";
  }

  template <class Body>
  asio::awaitable<bool> reply(beast::tcp_stream& stream, http::response<Body>& res, bool keep_alive) {
    res.keep_alive(keep_alive);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
    co_return !ec;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    stream.socket().set_option(tcp::no_delay(true));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(8u << 20);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (ec) co_return;
      http::request<http::string_body> req = parser.release();
      ++counters.http_requests;
      if (websocket::is_upgrade(req)) {
        if (req.target() != "/v1/ws") co_return;
        co_await ws_session(std::move(stream), std::move(req));
        co_return;
      }
      const bool keep = req.keep_alive();
      const std::string target(req.target());
      if (req.method() == http::verb::get) {
        http::response<http::string_body> res{http::status::ok, 11};
        if (target == "/v1/models") {
          res.set(http::field::content_type, "application/json");
          res.body() =
              R"({"object":"list","data":[{"id":")" + options.model + R"(","object":"model","owned_by":"stub"}]})";
        } else if (target == "/health") {
          res.body() = "";
        } else if (target == "/metrics") {
          res.set(http::field::content_type, "text/plain; version=0.0.4");
          res.body() = metrics();
        } else {
          res.result(http::status::not_found);
          res.set(http::field::content_type, "application/json");
          res.body() = R"({"error":{"message":"not found","type":"NotFoundError","code":404}})";
        }
        if (!co_await reply(stream, res, keep)) co_return;
      } else if (req.method() == http::verb::post && target == "/tokenize" && options.tokenize) {
        boost::system::error_code jec;
        json::value body = json::parse(req.body(), jec);
        const StubRequest r = read_request(body, target);
        http::response<http::string_body> res{http::status::ok, 11};
        res.set(http::field::content_type, "application/json");
        res.body() =
            R"({"count":)" + std::to_string(options.tokenize(r.prompt_text)) + R"(,"max_model_len":4096,"tokens":[]})";
        if (!co_await reply(stream, res, keep)) co_return;
      } else if (req.method() == http::verb::post &&
                 (target == "/v1/chat/completions" || target == "/v1/completions")) {
        boost::system::error_code jec;
        json::value body = json::parse(req.body(), jec);
        StubRequest r = read_request(body, target);
        StubScript script = options.script(r);
        if (script.status != 200) {
          http::response<http::string_body> res{static_cast<http::status>(script.status), 11};
          res.set(http::field::content_type, "application/json");
          res.body() = R"({"error":{"message":"scripted failure","type":"ScriptedError","param":null,"code":)" +
                       std::to_string(script.status) + "}}";
          if (!co_await reply(stream, res, keep)) co_return;
        } else if (!co_await stream_sse(stream, r, script, keep)) {
          co_return;
        }
      } else {
        http::response<http::string_body> res{http::status::not_found, 11};
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"error":{"message":"not found","type":"NotFoundError","code":404}})";
        if (!co_await reply(stream, res, keep)) co_return;
      }
      if (!keep) {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  asio::awaitable<bool> write_piece(beast::tcp_stream& stream, const std::string& data, size_t fragment) {
    if (fragment == 0 || fragment >= data.size()) {
      auto [ec, n] = co_await asio::async_write(stream, http::make_chunk(asio::buffer(data)), use_tuple);
      co_return !ec;
    }
    asio::steady_timer gap(co_await asio::this_coro::executor);
    for (size_t i = 0; i < data.size(); i += fragment) {
      const size_t len = std::min(fragment, data.size() - i);
      auto [ec, n] =
          co_await asio::async_write(stream, http::make_chunk(asio::buffer(data.data() + i, len)), use_tuple);
      if (ec) co_return false;
      // A short pause so that the pieces arrive in separate reads.
      gap.expires_after(std::chrono::milliseconds(2));
      co_await gap.async_wait(use_tuple);
    }
    co_return true;
  }

  // Watches an SSE stream's socket for the client's disconnect: the client sends nothing while it
  // reads a stream, so the socket turning readable with nothing to read is its FIN or RST.
  struct PeerWatch {
    bool active = true;  // false once the stream is over: a late completion does nothing
    bool gone = false;
    asio::steady_timer* step_timer = nullptr;
  };

  void watch_peer(beast::tcp_stream& stream, std::shared_ptr<PeerWatch> watch) {
    stream.socket().async_wait(tcp::socket::wait_read, [this, watch, &stream](const boost::system::error_code& ec) {
      if (ec || !watch->active) return;
      boost::system::error_code aec;
      if (stream.socket().available(aec) > 0 && !aec) return;  // pipelined data
      note_disconnect(*watch);
      if (watch->step_timer) watch->step_timer->cancel();
    });
  }

  void note_disconnect(PeerWatch& watch) {
    if (watch.gone) return;
    watch.gone = true;
    ++counters.sse_disconnects;
  }

  asio::awaitable<bool> stream_sse(beast::tcp_stream& stream, const StubRequest& r, const StubScript& s, bool keep) {
    ++counters.streams;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto watch = std::make_shared<PeerWatch>();
    watch->step_timer = &timer;
    watch_peer(stream, watch);
    const bool ok = co_await stream_sse_steps(stream, r, s, keep, timer, *watch);
    watch->active = false;
    watch->step_timer = nullptr;
    if (!ok && !watch->gone && !s.close_after_chunks) note_disconnect(*watch);  // a write failed
    if (ok) {
      boost::system::error_code ignored;
      stream.socket().cancel(ignored);  // the watch; the session reads the next request
    }
    co_return ok;
  }

  asio::awaitable<bool> stream_sse_steps(beast::tcp_stream& stream, const StubRequest& r, const StubScript& s,
                                         bool keep, asio::steady_timer& timer, const PeerWatch& watch) {
    const auto t_start = Clock::now();
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "text/event-stream");
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(keep);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    auto [hec, hn] = co_await http::async_write_header(stream, sr, use_tuple);
    if (hec) co_return false;
    const std::string id = (r.chat ? "chatcmpl-stub-" : "cmpl-stub-") + std::to_string(next_id++);
    const std::string model = r.model.empty() ? options.model : r.model;
    const std::string text_json = json::serialize(json::string(s.chunk_text));
    const char* eol = s.crlf ? "\r\n" : "\n";
    auto event = [&](const std::string& data) { return std::string("data: ") + data + eol + eol; };
    for (const Step& step : timeline(r, s)) {
      const auto when = t_start + ms(step.offset_ms);
      if (when > Clock::now() && !watch.gone) {
        timer.expires_at(when);
        co_await timer.async_wait(use_tuple);
      }
      if (watch.gone) co_return false;
      std::string data;
      switch (step.kind) {
        case Step::Kind::kRole: data = event(chunk_json(r, id, model, "role", text_json, "")); break;
        case Step::Kind::kContent:
          data = event(chunk_json(r, id, model, "content", text_json, ""));
          ++counters.chunks_sent;
          break;
        case Step::Kind::kPing: data = std::string(": ping") + eol + eol; break;
        case Step::Kind::kError:
          data = event(
              R"({"error":{"message":"scripted mid-stream failure","type":"InternalServerError","param":null,"code":500}})");
          break;
        case Step::Kind::kFinish: data = event(chunk_json(r, id, model, "finish", text_json, "")); break;
        case Step::Kind::kUsage: data = event(chunk_json(r, id, model, "usage", text_json, usage_json(s))); break;
        case Step::Kind::kDone: data = event("[DONE]"); break;
        case Step::Kind::kClose: {
          beast::error_code ignored;
          stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
          stream.close();
          co_return false;
        }
      }
      if (!co_await write_piece(stream, data, s.fragment_bytes)) co_return false;
    }
    auto [lec, ln] = co_await asio::async_write(stream, http::make_chunk_last(), use_tuple);
    co_return !lec;
  }

  struct WsState {
    explicit WsState(beast::tcp_stream s) : ws(std::move(s)) {}
    websocket::stream<beast::tcp_stream> ws;
    std::deque<std::string> outbox;
    bool writing = false;
    bool closed = false;
    std::set<std::string> cancelled;
  };

  static asio::awaitable<void> drain(std::shared_ptr<WsState> st) {
    while (!st->outbox.empty() && !st->closed) {
      auto [ec, n] = co_await st->ws.async_write(asio::buffer(st->outbox.front()), use_tuple);
      st->outbox.pop_front();
      if (ec) st->closed = true;
    }
    st->outbox.clear();
    st->writing = false;
  }

  static void send(const std::shared_ptr<WsState>& st, asio::any_io_executor ex, std::string msg) {
    if (st->closed) return;
    st->outbox.push_back(std::move(msg));
    if (st->writing) return;
    st->writing = true;
    asio::co_spawn(ex, drain(st), [](std::exception_ptr) {});
  }

  asio::awaitable<void> ws_session(beast::tcp_stream stream, http::request<http::string_body> req) {
    auto ex = co_await asio::this_coro::executor;
    auto st = std::make_shared<WsState>(std::move(stream));
    ++counters.ws_connections;
    beast::get_lowest_layer(st->ws).expires_never();
    st->ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    auto [aec] = co_await st->ws.async_accept(req, use_tuple);
    if (aec) co_return;
    st->ws.text(true);
    beast::flat_buffer buffer;
    for (;;) {
      auto [ec, n] = co_await st->ws.async_read(buffer, use_tuple);
      if (ec) {
        st->closed = true;
        co_return;
      }
      boost::system::error_code jec;
      json::value msg =
          json::parse(std::string_view(static_cast<const char*>(buffer.data().data()), buffer.size()), jec);
      buffer.consume(buffer.size());
      if (jec || !msg.is_object()) continue;
      const auto& o = msg.as_object();
      const auto* type = o.if_contains("type");
      const auto* id_v = o.if_contains("id");
      if (!type || !type->is_string() || !id_v || !id_v->is_string()) continue;
      const std::string id(id_v->as_string());
      if (type->as_string() == "response.cancel") {
        ++counters.ws_cancels;
        st->cancelled.insert(id);
      } else if (type->as_string() == "response.create") {
        ++counters.ws_requests;
        const json::value* request = o.if_contains("request");
        StubRequest r = read_request(request ? *request : json::value(), "/v1/ws");
        r.chat = true;
        r.include_usage = true;  // response.done carries usage on this endpoint
        asio::co_spawn(ex, ws_stream(st, id, r, options.script(r)), [](std::exception_ptr) {});
      }
    }
  }

  asio::awaitable<void> ws_stream(std::shared_ptr<WsState> st, std::string id, StubRequest r, StubScript s) {
    auto ex = co_await asio::this_coro::executor;
    const auto t_start = Clock::now();
    const std::string model = r.model.empty() ? options.model : r.model;
    const std::string text_json = json::serialize(json::string(s.chunk_text));
    const std::string id_json = json::serialize(json::string(id));
    if (s.status != 200) {
      send(st, ex,
           R"({"type":"error","id":)" + id_json +
               R"(,"error":{"message":"scripted failure","type":"ScriptedError","code":)" + std::to_string(s.status) +
               "}}");
      co_return;
    }
    send(st, ex, R"({"type":"response.created","id":)" + id_json + "}");
    asio::steady_timer timer(ex);
    for (const Step& step : timeline(r, s)) {
      const auto when = t_start + ms(step.offset_ms);
      if (when > Clock::now()) {
        timer.expires_at(when);
        co_await timer.async_wait(use_tuple);
      }
      if (st->closed) co_return;
      if (st->cancelled.count(id)) {
        send(st, ex, R"({"type":"response.done","id":)" + id_json + R"(,"status":"cancelled"})");
        co_return;
      }
      switch (step.kind) {
        case Step::Kind::kRole:
          send(st, ex,
               R"({"type":"chunk","id":)" + id_json + R"(,"data":)" + chunk_json(r, id, model, "role", text_json, "") +
                   "}");
          break;
        case Step::Kind::kContent:
          ++counters.chunks_sent;
          send(st, ex,
               R"({"type":"chunk","id":)" + id_json + R"(,"data":)" +
                   chunk_json(r, id, model, "content", text_json, "") + "}");
          break;
        case Step::Kind::kFinish:
          send(st, ex,
               R"({"type":"chunk","id":)" + id_json + R"(,"data":)" +
                   chunk_json(r, id, model, "finish", text_json, "") + "}");
          break;
        case Step::Kind::kError:
          send(st, ex,
               R"({"type":"error","id":)" + id_json +
                   R"(,"error":{"message":"scripted mid-stream failure","type":"InternalServerError","code":500}})");
          co_return;
        case Step::Kind::kClose: {
          st->closed = true;
          beast::error_code ignored;
          beast::get_lowest_layer(st->ws).socket().shutdown(tcp::socket::shutdown_both, ignored);
          beast::get_lowest_layer(st->ws).close();
          co_return;
        }
        case Step::Kind::kUsage:
        case Step::Kind::kPing: break;
        case Step::Kind::kDone: {
          std::string done = R"({"type":"response.done","id":)" + id_json + R"(,"status":"completed")";
          if (s.usage) done += R"(,"usage":)" + usage_json(s);
          send(st, ex, done + "}");
          co_return;
        }
      }
    }
  }
};

StubServer::StubServer(StubServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

StubServer::~StubServer() { stop(); }

uint16_t StubServer::port() const { return impl_->port; }

void StubServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  impl_->spawn_listener();
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
}

void StubServer::run_blocking() {
  impl_->started = true;
  impl_->spawn_listener();
  for (int i = 1; i < std::max(1, impl_->options.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  impl_->ioc.run();
}

void StubServer::stop() {
  if (!impl_) return;
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

StubStats StubServer::stats() const {
  const Counters& c = impl_->counters;
  StubStats out;
  out.connections = c.connections.load();
  out.http_requests = c.http_requests.load();
  out.streams = c.streams.load();
  out.sse_disconnects = c.sse_disconnects.load();
  out.ws_connections = c.ws_connections.load();
  out.ws_requests = c.ws_requests.load();
  out.ws_cancels = c.ws_cancels.load();
  out.chunks_sent = c.chunks_sent.load();
  return out;
}

}  // namespace aurora::loadgen::stub
