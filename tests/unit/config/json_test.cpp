#include "aurora/config/json.hpp"

#include <functional>

#include <catch2/catch.hpp>

using aurora::config::JsonDocument;

namespace {
std::string error_of(const std::function<void()>& fn) {
  auto r = aurora::capture_errors(fn);
  return r.ok() ? std::string("(no error)") : r.error().message;
}
}  // namespace

TEST_CASE("field paths name the offending value") {
  auto doc = JsonDocument::parse(R"({"gpus": [{"bandwidth_gbps": 100}, {"bandwidth_gbps": -5}], "name": 3})");
  REQUIRE(doc.ok());
  auto root = doc->root();
  CHECK(root["gpus"][0]["bandwidth_gbps"].positive_double() == 100.0);
  CHECK(error_of([&] { root["gpus"][1]["bandwidth_gbps"].positive_double(); }) ==
        "gpus[1].bandwidth_gbps: must be > 0, got -5");
  CHECK(error_of([&] { root["name"].as_string(); }) == "name: must be a string, got a number 3");
  CHECK(error_of([&] { root["missing"]; }) == "missing: is required");
  CHECK(error_of([&] { root["gpus"].items()[0].reject_unknown_keys({"x"}); }) ==
        "gpus[0].bandwidth_gbps: unknown field");
  CHECK(!root.find("missing").has_value());
}

TEST_CASE("integers are checked for range and integrality") {
  auto doc = JsonDocument::parse(R"({"n": 2.5, "m": 70, "k": 7})");
  REQUIRE(doc.ok());
  auto root = doc->root();
  CHECK(error_of([&] { root["n"].as_int(); }) == "n: must be an integer, got 2.5");
  CHECK(error_of([&] { root["m"].int_in(1, 64); }) == "m: must be in [1, 64], got 70");
  CHECK(root["k"].int_in(1, 64) == 7);
}

TEST_CASE("syntax errors are reported, not thrown") {
  auto doc = JsonDocument::parse("{\"a\": [1, 2", "scenario.json");
  REQUIRE(!doc.ok());
  CHECK(doc.error().message.rfind("scenario.json: invalid JSON", 0) == 0);
}
