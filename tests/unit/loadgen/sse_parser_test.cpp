#include <catch2/catch.hpp>

#include "aurora/loadgen/sse_parser.hpp"

using namespace aurora::loadgen;

namespace {

std::vector<SseEvent> feed_all(SseParser& p, const std::vector<std::string>& pieces) {
  std::vector<SseEvent> out;
  for (const auto& piece : pieces) p.feed(piece, out);
  return out;
}

const std::string kStream =
    "data: {\"a\":1}\n\n"
    ": ping\n\n"
    "data: {\"b\":2}\n\n"
    "event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n"
    "data: [DONE]\n\n";

void check_stream_events(const std::vector<SseEvent>& ev) {
  REQUIRE(ev.size() == 4);
  CHECK(ev[0].data == "{\"a\":1}");
  CHECK(ev[0].event.empty());
  CHECK(ev[1].data == "{\"b\":2}");
  CHECK(ev[2].event == "error");
  CHECK(ev[2].data == "{\"error\":{\"message\":\"x\"}}");
  CHECK(ev[3].data == "[DONE]");
}

}  // namespace

TEST_CASE("SseParser reads events, comments and [DONE] from one read") {
  SseParser p;
  auto ev = feed_all(p, {kStream});
  check_stream_events(ev);
  CHECK(p.num_comments() == 1);
  CHECK_FALSE(p.finish().has_value());
}

TEST_CASE("SseParser gives the same events however the bytes are split") {
  for (size_t split = 1; split < kStream.size(); ++split) {
    SseParser p;
    auto ev = feed_all(p, {kStream.substr(0, split), kStream.substr(split)});
    INFO("split at " << split);
    check_stream_events(ev);
  }
  SseParser bytewise;
  std::vector<std::string> pieces;
  for (char c : kStream) pieces.emplace_back(1, c);
  check_stream_events(feed_all(bytewise, pieces));
}

TEST_CASE("SseParser accepts \\r\\n and lone \\r line ends, even with \\r and \\n in different reads") {
  std::string crlf;
  for (char c : kStream) {
    if (c == '\n')
      crlf += "\r\n";
    else
      crlf += c;
  }
  for (size_t split = 1; split < crlf.size(); ++split) {
    SseParser p;
    INFO("split at " << split);
    check_stream_events(feed_all(p, {crlf.substr(0, split), crlf.substr(split)}));
  }
  std::string cr;
  for (char c : kStream) cr += c == '\n' ? '\r' : c;
  SseParser p;
  check_stream_events(feed_all(p, {cr}));
}

TEST_CASE("SseParser joins multi-line data and follows the field rules") {
  SseParser p;
  auto ev =
      feed_all(p, {"data: line one\ndata:line two\ndata\n\n", "id: 7\nretry: 10\nfoo: bar\ndata:  two spaces\n\n"});
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].data == "line one\nline two\n");
  CHECK(ev[1].data == " two spaces");  // only one leading space is dropped
}

TEST_CASE("SseParser ignores blank lines and events without data") {
  SseParser p;
  auto ev = feed_all(p, {"\n\n\nevent: ping\n\n: keep-alive\n\n: keep-alive\n\ndata: x\n\n"});
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].data == "x");
  CHECK(ev[0].event.empty());  // the event field of a dropped event does not leak
  CHECK(p.num_comments() == 2);
}

TEST_CASE("SseParser::finish returns an event left without its blank line") {
  SseParser p;
  auto ev = feed_all(p, {"data: {\"a\":1}\n\ndata: {\"last\":true}"});
  REQUIRE(ev.size() == 1);
  auto last = p.finish();
  REQUIRE(last.has_value());
  CHECK(last->data == "{\"last\":true}");
  CHECK_FALSE(p.finish().has_value());
}

TEST_CASE("SseParser stops at an oversized event instead of growing without bound") {
  SseParser p(64);
  std::vector<SseEvent> out;
  p.feed("data: " + std::string(100, 'x'), out);
  CHECK(p.overflowed());
  CHECK(out.empty());
  SseParser r(64);
  r.feed("data: " + std::string(40, 'x') + "\ndata: " + std::string(40, 'y') + "\n", out);
  CHECK(r.overflowed());
}
