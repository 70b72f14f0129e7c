// The WebSocket endpoint /v1/ws with a Beast client: multiplexing by id, cancel, errors, the
// message cap, and closing the socket cancelling everything in flight.
#include <signal.h>

#include <map>
#include <set>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include "fake_engine.hpp"
#include "support/test_util.hpp"

using namespace aurora::testing;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;

namespace {

class WsClient {
 public:
  explicit WsClient(uint16_t port, const std::string& api_key = "") : ws_(ioc_) {
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    ws_.next_layer().connect(ep);
    if (!api_key.empty()) {
      ws_.set_option(websocket::stream_base::decorator([api_key](websocket::request_type& req) {
        req.set(beast::http::field::authorization, "Bearer " + api_key);
      }));
    }
    ws_.handshake("127.0.0.1", "/v1/ws");
  }
  void send(const std::string& text) { ws_.write(net::buffer(text)); }
  // The next message as JSON (throws on close).
  json::object next() {
    beast::flat_buffer b;
    ws_.read(b);
    return json::parse(beast::buffers_to_string(b.data())).as_object();
  }
  websocket::stream<net::ip::tcp::socket>& stream() { return ws_; }

 private:
  net::io_context ioc_;
  websocket::stream<net::ip::tcp::socket> ws_;
};

std::string create(const std::string& id, const std::string& request_extra) {
  return R"({"type":"response.create","id":)" + id + R"(,"request":{"messages":[{"role":"user","content":"hi"}])" +
         request_extra + "}}";
}

ServerProcess& ws_server() {
  static ServerProcess server({"--fake-step-ms", "2", "--ws-max-inflight", "3"});
  return server;
}

}  // namespace

TEST_CASE("requests are multiplexed by id and each ends with response.done", "[ws][fake]") {
  WsClient c(ws_server().port());
  c.send(create(R"("a")", R"(,"max_tokens":5)"));
  c.send(create("7", R"(,"max_tokens":7,"seed":3)"));
  std::map<std::string, std::string> text;
  std::map<std::string, json::object> done;
  std::set<std::string> created;
  while (done.size() < 2) {
    auto m = c.next();
    const std::string id = json::serialize(m.at("id"));
    const std::string type(m.at("type").as_string());
    if (type == "response.created") {
      CHECK(created.insert(id).second);
      CHECK(text.count(id) == 0);  // before any chunk of its request
      continue;
    }
    CHECK(created.count(id) == 1);
    if (type == "chunk") {
      const auto& choice = m.at("data").at("choices").at(0);
      CHECK(m.at("data").at("object").as_string() == "chat.completion.chunk");
      if (choice.at("delta").as_object().contains("content")) text[id] += choice.at("delta").at("content").as_string();
    } else {
      REQUIRE(type == "response.done");
      done[id] = m;
    }
  }
  CHECK(text["\"a\""] == FakeEngine::expected_text(5));
  CHECK(text["7"] == FakeEngine::expected_text(7, 3));
  CHECK(done["\"a\""].at("status").as_string() == "completed");
  CHECK(done["\"a\""].at("usage").at("completion_tokens").as_int64() == 5);
  CHECK(done["7"].at("usage").at("completion_tokens").as_int64() == 7);
}

TEST_CASE("chunks carry the logprobs of their tokens", "[ws][fake][logprobs]") {
  WsClient c(ws_server().port());
  c.send(create(R"("lp")", R"(,"max_tokens":3,"logprobs":true,"top_logprobs":2)"));
  CHECK(c.next().at("type").as_string() == "response.created");
  std::vector<std::string> tokens;
  for (;;) {
    auto m = c.next();
    if (m.at("type").as_string() != "chunk") {
      CHECK(m.at("type").as_string() == "response.done");
      break;
    }
    const auto& lp = m.at("data").at("choices").at(0).at("logprobs");
    if (lp.is_null()) continue;
    for (const auto& t : lp.at("content").as_array()) {
      tokens.emplace_back(t.at("token").as_string());
      CHECK(t.at("top_logprobs").as_array().size() == 2);
    }
  }
  CHECK(tokens == std::vector<std::string>{FakeTokenizer::word(0), FakeTokenizer::word(1), FakeTokenizer::word(2)});
}

TEST_CASE("response.cancel ends one request with status cancelled", "[ws][fake]") {
  const uint16_t port = ws_server().port();
  WsClient c(port);
  c.send(create(R"("long")", R"(,"max_tokens":4000)"));
  c.send(create(R"("short")", R"(,"max_tokens":3)"));
  int long_chunks = 0;
  bool cancelled = false;
  bool short_done = false;
  while (!cancelled || !short_done) {
    auto m = c.next();
    const std::string type(m.at("type").as_string());
    const std::string id(m.at("id").as_string());
    if (type == "chunk" && id == "long" && ++long_chunks == 3) c.send(R"({"type":"response.cancel","id":"long"})");
    if (type == "response.done" && id == "long") {
      CHECK(m.at("status").as_string() == "cancelled");
      cancelled = true;
    }
    if (type == "response.done" && id == "short") short_done = true;
  }
  CHECK(eventually([&] { return metric(port, "aurora:kv_cache_blocks_used") == 0; }));
}

TEST_CASE("bad messages get error events and the socket stays usable", "[ws]") {
  WsClient c(ws_server().port());
  c.send("{not json");
  auto e1 = c.next();
  CHECK(e1.at("type").as_string() == "error");
  CHECK(e1.at("id").is_null());
  CHECK(e1.at("status").as_int64() == 400);
  c.send(create(R"("x")", R"(,"n":9)"));
  auto e2 = c.next();
  CHECK(e2.at("id").as_string() == "x");
  CHECK(e2.at("error").at("param").as_string() == "request.n");
  c.send(R"({"type":"response.cancel","id":"nobody"})");
  auto e3 = c.next();
  CHECK(e3.at("status").as_int64() == 404);
  CHECK(e3.at("error").at("code").as_string() == "request_not_found");
  c.send(create(R"("m")", R"(,"model":"nope")"));
  CHECK(c.next().at("error").at("code").as_string() == "model_not_found");
  c.stream().binary(true);
  c.send("{}");
  CHECK(c.next().at("type").as_string() == "error");
  c.stream().binary(false);
  c.send(create(R"("ok")", R"(,"max_tokens":1)"));
  std::string last;
  while (last != "response.done") last = std::string(c.next().at("type").as_string());
}

TEST_CASE("too many requests on one socket, and duplicate ids", "[ws][fake]") {
  WsClient c(ws_server().port());
  for (const char* id : {R"("1")", R"("2")", R"("3")"}) c.send(create(id, R"(,"max_tokens":4000)"));
  c.send(create(R"("1")", R"(,"max_tokens":1)"));
  c.send(create(R"("4")", R"(,"max_tokens":1)"));
  std::map<std::string, int64_t> status;
  while (status.size() < 2) {
    auto m = c.next();
    if (m.at("type").as_string() == "error") status[std::string(m.at("id").as_string())] = m.at("status").as_int64();
  }
  CHECK(status["1"] == 400);  // duplicate id
  CHECK(status["4"] == 429);  // over ws_max_inflight
}

TEST_CASE("closing the socket cancels every request in flight", "[ws][fake]") {
  const uint16_t port = ws_server().port();
  {
    WsClient c(port);
    for (const char* id : {R"("p")", R"("q")"}) c.send(create(id, R"(,"max_tokens":4000)"));
    int chunks = 0;
    while (chunks < 6) {
      if (c.next().at("type").as_string() == "chunk") ++chunks;
    }
    CHECK(metric(port, "aurora:kv_cache_blocks_used") > 0);
    beast::get_lowest_layer(c.stream()).close();  // no close frame: the TCP connection just goes
  }
  CHECK(eventually([&] { return metric(port, "aurora:kv_cache_blocks_used") == 0; }));
  CHECK(eventually([&] { return metric(port, "aurora:streams_open") == 0; }));
}

TEST_CASE("a message over 1 MiB closes the socket with 1009", "[ws]") {
  WsClient c(ws_server().port());
  c.send(std::string(1024 * 1024 + 1, ' '));
  beast::flat_buffer b;
  beast::error_code ec;
  c.stream().read(b, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(c.stream().reason().code == websocket::close_code::too_big);
}

TEST_CASE("the API key covers the WebSocket upgrade", "[ws]") {
  ServerProcess server({"--api-key", "sk-test"});
  CHECK_THROWS(WsClient(server.port()));
  CHECK_THROWS(WsClient(server.port(), "SK-TEST"));
  WsClient ok(server.port(), "sk-test");
  ok.send(create(R"("a")", R"(,"max_tokens":1)"));
  CHECK(ok.next().at("type").as_string() == "response.created");
  CHECK(ok.next().at("type").as_string() == "chunk");
}

TEST_CASE("on SIGTERM a WebSocket refuses new requests, finishes its own, then closes with 1001", "[ws][drain][fake]") {
  ServerProcess server({"--fake-step-ms", "2", "--drain-timeout-ms", "5000"});
  WsClient c(server.port());
  c.send(create(R"("last")", R"(,"max_tokens":60,"ignore_eos":true)"));
  CHECK(c.next().at("type").as_string() == "response.created");
  CHECK(c.next().at("type").as_string() == "chunk");
  server.send_signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  c.send(create(R"("late")", R"(,"max_tokens":1)"));
  bool refused = false;
  bool done = false;
  int chunks = 1;
  while (!done || !refused) {
    auto m = c.next();
    const std::string type(m.at("type").as_string());
    if (type == "error") {
      CHECK(m.at("id").as_string() == "late");
      CHECK(m.at("error").at("code").as_string() == "server_draining");
      refused = true;
    } else if (type == "chunk") {
      ++chunks;
    } else if (type == "response.done") {
      CHECK(m.at("status").as_string() == "completed");
      done = true;
    }
  }
  CHECK(refused);
  CHECK(chunks == 62);  // the role chunk, 60 tokens, the finish chunk
  beast::flat_buffer b;
  beast::error_code ec;
  c.stream().read(b, ec);
  CHECK(ec == websocket::error::closed);
  CHECK(c.stream().reason().code == websocket::close_code::going_away);
  auto code = server.wait_exit(std::chrono::milliseconds(3000));
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("a WebSocket request that gets no token ends with a no_progress error; the others go on", "[ws][fake]") {
  ServerProcess server({"--fake-step-ms", "2", "--no-progress-timeout-ms", "500"});
  const uint16_t port = server.port();
  WsClient c(port);
  const auto start = std::chrono::steady_clock::now();
  c.send(R"({"type":"response.create","id":"stuck","request":{"messages":[{"role":"user","content":"[fake:hang]"}],)"
         R"("max_tokens":5}})");
  c.send(create(R"("fine")", R"(,"max_tokens":3)"));
  bool stuck_failed = false;
  bool fine_done = false;
  while (!stuck_failed || !fine_done) {
    auto m = c.next();
    const std::string type(m.at("type").as_string());
    const std::string id(m.at("id").as_string());
    if (type == "error" && id == "stuck") {
      CHECK(m.at("status").as_int64() == 503);
      CHECK(m.at("error").at("code").as_string() == "no_progress");
      CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(450));
      stuck_failed = true;
    }
    if (type == "response.done" && id == "fine") {
      CHECK(m.at("status").as_string() == "completed");
      fine_done = true;
    }
  }
  CHECK(eventually([&] { return engine_busy(port) == 0; }));  // cancelled in the engine too
  CHECK(metric(port, "aurora:no_progress_cancels_total") == 1);
}
