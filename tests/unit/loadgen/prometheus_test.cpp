#include <catch2/catch.hpp>

#include "aurora/loadgen/prometheus.hpp"

using namespace aurora::loadgen;

TEST_CASE("parse_prometheus_text reads names, labels and values, skipping what it cannot read") {
  const auto samples = parse_prometheus_text(
      "# HELP aurora:plan_version The plan in force\n"
      "# TYPE aurora:plan_version gauge\n"
      "aurora:plan_version 3\n"
      "aurora:expert_load_balance{layer=\"0\",model_name=\"m\"} 1.25\r\n"
      "aurora:expert_load_balance{layer=\"1\"} 2.5e0 1700000000000\n"
      "weird{label=\"a\\\"b\"} 1\n"
      "broken{layer=0} 1\n"
      "nonumber\n"
      "   \n"
      "vllm:num_requests_running{model_name=\"x\"} +Inf\n");
  REQUIRE(samples.size() == 5);
  CHECK(samples[0].name == "aurora:plan_version");
  CHECK(samples[0].value == 3);
  CHECK(samples[1].label("layer") == std::optional<std::string>("0"));
  CHECK(samples[1].label("model_name") == std::optional<std::string>("m"));
  CHECK(samples[2].value == 2.5);
  CHECK(samples[3].label("label") == std::optional<std::string>("a\"b"));
  CHECK(std::isinf(samples[4].value));
}

TEST_CASE("extract_aurora_gauges picks the plan version and per-layer balance") {
  const auto snap = extract_aurora_gauges(parse_prometheus_text("aurora:plan_version 7\n"
                                                                "aurora:expert_load_balance{layer=\"2\"} 1.5\n"
                                                                "aurora:expert_load_balance{layer=\"0\"} 1.0\n"
                                                                "aurora:expert_load_balance{layer=\"x\"} 9\n"
                                                                "aurora:expert_load_balance 9\n"),
                                          12.5);
  CHECK(snap.t_s == 12.5);
  CHECK(*snap.plan_version == 7);
  REQUIRE(snap.balance_by_layer.size() == 2);
  CHECK(snap.balance_by_layer.at(2) == 1.5);
  CHECK(*snap.mean_balance() == 1.25);
  CHECK(*snap.max_balance() == 1.5);
}

TEST_CASE("a server without Aurora's gauges leaves the snapshot empty") {
  const auto snap = extract_aurora_gauges(parse_prometheus_text("vllm:num_requests_running 4\n"), 1);
  CHECK_FALSE(snap.plan_version.has_value());
  CHECK(snap.balance_by_layer.empty());
  CHECK_FALSE(snap.mean_balance().has_value());
  CHECK(parse_prometheus_text("").empty());
}
