// Helpers for the load generator's fake-server tests: one run against a StubServer from command-line
// flags (with quiet, fast defaults) and failures counted by reason.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/runner.hpp"
#include "stub_server.hpp"

namespace aurora::loadgen::testing {

// Runs aurora-loadgen against `server`; flags not given default to no scraping, no calibration,
// 32-token prompts and 5 output tokens. A run that cannot start fails the test.
inline RunResult run_loadgen(const stub::StubServer& server, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"aurora-loadgen", "--port", std::to_string(server.port()), "--progress", "off"};
  const std::vector<std::pair<std::string, std::string>> defaults = {{"--scrape-metrics", "off"},
                                                                     {"--calibrate-lengths", "off"},
                                                                     {"--random-input-len", "32"},
                                                                     {"--random-output-len", "5"}};
  for (const auto& [flag, value] : defaults) {
    if (std::find(args.begin(), args.end(), flag) == args.end()) all.insert(all.end(), {flag, value});
  }
  all.insert(all.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const auto& a : all) argv.push_back(a.c_str());
  auto parsed = parse_command_line(static_cast<int>(argv.size()), argv.data());
  if (!parsed) FAIL(parsed.error().message);
  REQUIRE(parsed->config.has_value());
  auto result = run_benchmark(*parsed->config);
  if (!result) FAIL(result.error().message);
  return std::move(*result);
}

inline std::map<std::string, int> failure_reasons(const RunResult& r) {
  std::map<std::string, int> out;
  for (const auto& rec : r.records) {
    if (!rec.success && !rec.cancelled) ++out[rec.error_reason];
  }
  return out;
}

}  // namespace aurora::loadgen::testing
