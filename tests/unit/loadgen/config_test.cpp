#include <catch2/catch.hpp>

#include <cmath>

#include "aurora/loadgen/config.hpp"

using namespace aurora::loadgen;

namespace {
aurora::Result<ParsedCommandLine> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "aurora-loadgen");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}
LoadgenConfig config_of(std::vector<const char*> args) {
  auto parsed = parse(std::move(args));
  REQUIRE(parsed.ok());
  REQUIRE(parsed->config.has_value());
  return *parsed->config;
}
std::string error_of(std::vector<const char*> args) {
  auto parsed = parse(std::move(args));
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message;
}
}  // namespace

TEST_CASE("defaults follow vllm bench serve") {
  const LoadgenConfig c = config_of({});
  CHECK(c.backend == Backend::kOpenAI);
  CHECK(c.target.endpoint == "/v1/completions");
  CHECK(c.target.base_url() == "http://127.0.0.1:8000");
  CHECK(*c.num_prompts == 1000);
  CHECK(std::isinf(c.request_rate));
  CHECK(c.burstiness == 1.0);
  CHECK(c.seed == 0);
  CHECK(c.workload.input.mean == 1024);
  CHECK(c.workload.output.mean == 128);
  CHECK(c.sampling.ignore_eos);  // on for the random dataset, as in vLLM
  CHECK_FALSE(c.save_result.has_value());
}

TEST_CASE("a vLLM command line carries over") {
  const LoadgenConfig c = config_of({"--backend",
                                     "openai-chat",
                                     "--base-url",
                                     "http://10.0.0.5:9000",
                                     "--endpoint",
                                     "/v1/chat/completions",
                                     "--model",
                                     "mixtral",
                                     "--num-prompts",
                                     "200",
                                     "--request-rate",
                                     "12.5",
                                     "--burstiness",
                                     "0.5",
                                     "--max-concurrency",
                                     "64",
                                     "--goodput",
                                     "ttft:200",
                                     "tpot:50",
                                     "--percentile-metrics",
                                     "ttft,tpot,itl,e2el",
                                     "--metric-percentiles",
                                     "25,50,99.9",
                                     "--dataset-name",
                                     "random",
                                     "--random-input-len",
                                     "512",
                                     "--random-output-len",
                                     "64",
                                     "--random-range-ratio",
                                     "0.2",
                                     "--seed",
                                     "7",
                                     "--ignore-eos",
                                     "--save-result",
                                     "--result-dir",
                                     "/tmp",
                                     "--result-filename",
                                     "x.json"});
  CHECK(c.backend == Backend::kOpenAIChat);
  CHECK(c.api == ApiKind::kChat);
  CHECK(c.target.host == "10.0.0.5");
  CHECK(c.target.port == "9000");
  CHECK(c.sampling.model == "mixtral");
  CHECK(*c.num_prompts == 200);
  CHECK(c.request_rate == 12.5);
  CHECK(c.burstiness == 0.5);
  CHECK(*c.max_concurrency == 64);
  CHECK(*c.goodput.ttft_ms == 200);
  CHECK(*c.goodput.tpot_ms == 50);
  CHECK(c.metric_percentiles == std::vector<double>{25, 50, 99.9});
  CHECK(c.workload.input.mean == 512);
  CHECK(c.workload.input.range_ratio == 0.2);
  CHECK(c.seed == 7);
  CHECK(c.workload.seed == 7);
  CHECK(*c.save_result == "/tmp/x.json");
}

TEST_CASE("--save-result takes a file name too") {
  CHECK(*config_of({"--save-result", "out.json"}).save_result == "out.json");
  CHECK(*config_of({"--save-result=out2.json"}).save_result == "out2.json");
  const auto generated = *config_of({"--save-result", "--model", "m/x"}).save_result;
  CHECK_THAT(generated, Catch::StartsWith("openai-infqps-m_x-"));
}

TEST_CASE("our own flags: duration, users, schedules, mixes, plot") {
  const LoadgenConfig c = config_of({"--duration", "30", "--users", "8", "--think-time-ms", "100", "--traffic-mix",
                                     "prose=0.8,code=0.2@15s; prose=0.2,code=0.8", "--plot", "x.svg", "--backend",
                                     "aurora-ws", "--ws-connections", "2"});
  CHECK(*c.duration_s == 30);
  CHECK_FALSE(c.num_prompts.has_value());  // the duration bounds the run
  CHECK(*c.users == 8);
  CHECK(c.think_time_ms == 100);
  CHECK(c.plot == "x.svg");
  CHECK(c.target.endpoint == "/v1/ws");
  CHECK(c.ws_connections == 2);
  const LoadgenConfig s = config_of({"--rate-schedule", "1@10s,1->5@10s"});
  CHECK_FALSE(s.num_prompts.has_value());
  CHECK(s.rate_schedule == "1@10s,1->5@10s");
}

TEST_CASE("bad flags are rejected with the flag and the value named") {
  CHECK_THAT(error_of({"--backend", "tgi"}), Catch::Contains("--backend") && Catch::Contains("tgi"));
  CHECK_THAT(error_of({"--request-rate", "fast"}), Catch::Contains("--request-rate") && Catch::Contains("fast"));
  CHECK_THAT(error_of({"--request-rate", "-2"}), Catch::Contains("--request-rate"));
  CHECK_THAT(error_of({"--burstiness", "0"}), Catch::Contains("--burstiness"));
  CHECK_THAT(error_of({"--num-prompts", "0"}), Catch::Contains("--num-prompts"));
  CHECK_THAT(error_of({"--random-range-ratio", "1.5"}),
             Catch::Contains("--random-range-ratio") && Catch::Contains("1.5"));
  CHECK_THAT(error_of({"--goodput", "ttft:x"}), Catch::Contains("--goodput"));
  CHECK_THAT(error_of({"--percentile-metrics", "ttft,foo"}), Catch::Contains("foo"));
  CHECK_THAT(error_of({"--metric-percentiles", "100"}), Catch::Contains("--metric-percentiles"));
  CHECK_THAT(error_of({"--base-url", "https://x"}), Catch::Contains("https"));
  CHECK_THAT(error_of({"--base-url", "http://x:99999"}), Catch::Contains("99999"));
  CHECK_THAT(error_of({"--users", "4", "--request-rate", "3"}), Catch::Contains("--users"));
  CHECK_THAT(error_of({"--rate-schedule", "1@5s", "--request-rate", "3"}), Catch::Contains("--rate-schedule"));
  CHECK_THAT(error_of({"--rate-schedule", "1@5q"}), Catch::Contains("--rate-schedule[0]"));
  CHECK_THAT(error_of({"--duration", "10"}), Catch::Contains("--max-concurrency"));  // inf rate, no bound
  CHECK_THAT(error_of({"--extra-body", "[1]"}), Catch::Contains("--extra-body"));
  CHECK_THAT(error_of({"--no-such-flag"}), Catch::Contains("no-such-flag"));
  CHECK_THAT(error_of({"--ramp-up-strategy", "linear"}), Catch::Contains("--ramp-up"));
  CHECK_THAT(error_of({"--endpoint", "v1/x"}), Catch::Contains("--endpoint"));
}

TEST_CASE("--help states the metric definitions") {
  auto parsed = parse({"--help"});
  REQUIRE(parsed.ok());
  CHECK_FALSE(parsed->config.has_value());
  CHECK_THAT(parsed->message, Catch::Contains("TPOT") && Catch::Contains("(E2EL - TTFT) / (output tokens - 1)") &&
                                  Catch::Contains("--request-rate") && Catch::Contains("numpy.percentile"));
}

TEST_CASE("parse_base_url handles prefixes and IPv6") {
  auto t = parse_base_url("http://[::1]:8001/api/");
  REQUIRE(t.ok());
  CHECK(t->host == "::1");
  CHECK(t->port == "8001");
  CHECK(t->path_prefix == "/api");
  auto plain = parse_base_url("localhost");
  REQUIRE(plain.ok());
  CHECK(plain->port == "80");
}

TEST_CASE("request cancellation flags: AIPerf's names, a percentage and a delay, validated by name") {
  const LoadgenConfig d = config_of({});
  CHECK(d.request_cancellation_rate == 0);
  CHECK(d.request_cancellation_delay_s == 0);
  const LoadgenConfig c = config_of({"--request-cancellation-rate", "12.5", "--request-cancellation-delay", "0.5"});
  CHECK(c.request_cancellation_rate == 12.5);
  CHECK(c.request_cancellation_delay_s == 0.5);
  CHECK(config_of({"--request-cancellation-rate=100"}).request_cancellation_rate == 100);
  for (const char* bad : {"-1", "101", "abc", "", "nan", "inf", "5%"}) {
    INFO(bad);
    CHECK_THAT(error_of({"--request-cancellation-rate", bad}),
               Catch::Contains("--request-cancellation-rate") && Catch::Contains(std::string("\"") + bad + "\""));
  }
  for (const char* bad : {"-1", "abc", "inf", "-0.5", "1s"}) {
    INFO(bad);
    CHECK_THAT(error_of({"--request-cancellation-delay", bad}),
               Catch::Contains("--request-cancellation-delay") && Catch::Contains(std::string("\"") + bad + "\""));
  }
  CHECK_THAT(error_of({"--request-cancellation-rate=-1"}), Catch::Contains("\"-1\""));
}
