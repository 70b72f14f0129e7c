#include <catch2/catch.hpp>

#include "engine/stop_matcher.hpp"

using namespace aurora::runtime;

TEST_CASE("no stop strings: text passes through", "[stop]") {
  StopMatcher m;
  CHECK(m.push("hello").emit == "hello");
  CHECK(m.flush().empty());
}

TEST_CASE("a stop string split over pushes is found and never emitted", "[stop]") {
  StopMatcher m({"END"});
  CHECK(m.push("abc E").emit == "abc ");  // "E" may start "END"
  CHECK(m.push("N").emit.empty());
  auto r = m.push("Dxyz");
  CHECK(r.emit.empty());
  REQUIRE(r.matched);
  CHECK(m.stop(*r.matched) == "END");
}

TEST_CASE("held-back text is released when the match fails", "[stop]") {
  StopMatcher m({"END"});
  CHECK(m.push("xEN").emit == "x");
  CHECK(m.push("O").emit == "ENO");
  CHECK(m.push("E").emit.empty());
  CHECK(m.flush() == "E");
}

TEST_CASE("the earliest match wins among several stop strings", "[stop]") {
  StopMatcher m({"world", "lo w", ""});
  auto r = m.push("hello world");
  REQUIRE(r.matched);
  CHECK(m.stop(*r.matched) == "lo w");
  CHECK(r.emit == "hel");
}

TEST_CASE("overlapping prefixes hold back the longest candidate", "[stop]") {
  StopMatcher m({"aab"});
  CHECK(m.push("xaa").emit == "x");
  auto r = m.push("ab");  // pending "aaab": "aab" occurs at 1
  REQUIRE(r.matched);
  CHECK(r.emit == "a");
}

TEST_CASE("multi-byte UTF-8 stop strings hold back whole characters", "[stop]") {
  StopMatcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  CHECK(m.push("caf\xC3\xA9").emit == "caf");
  CHECK(m.push("!").emit == "\xC3\xA9!");
}

TEST_CASE("a push that may not match (min_tokens) emits a stop string but still holds its prefix", "[stop]") {
  StopMatcher m({"END"});
  CHECK(m.push("aEND", /*match=*/false).emit == "aEND");
  CHECK(m.push("bEN", /*match=*/false).emit == "b");
  auto r = m.push("D!");  // begun while matching was off, completed after: found
  CHECK(r.emit.empty());
  REQUIRE(r.matched);
}
