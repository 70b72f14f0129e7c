// Metrics: Prometheus text exposition, cumulative histogram buckets, vLLM's names under aurora:.
#include "metrics.hpp"

#include <catch2/catch.hpp>

#include "fake_engine.hpp"

using namespace aurora::server;

TEST_CASE("histogram buckets are cumulative with +Inf, _sum and _count", "[metrics]") {
  const double bounds[] = {0.01, 0.1, 1.0};
  Histogram h(bounds);
  h.observe(0.005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(5.0);
  std::string out;
  h.render(out, "x", "model_name=\"m\"");
  CHECK(out.find("x_bucket{model_name=\"m\",le=\"0.01\"} 1\n") != std::string::npos);
  CHECK(out.find("x_bucket{model_name=\"m\",le=\"0.1\"} 3\n") != std::string::npos);
  CHECK(out.find("x_bucket{model_name=\"m\",le=\"1\"} 3\n") != std::string::npos);
  CHECK(out.find("x_bucket{model_name=\"m\",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(out.find("x_sum{model_name=\"m\"} 5.105\n") != std::string::npos);
  CHECK(out.find("x_count{model_name=\"m\"} 4\n") != std::string::npos);
}

TEST_CASE("the exposition carries vLLM's set of metrics", "[metrics]") {
  Metrics m;
  auto* model = m.model("tiny");
  model->time_to_first_token.observe(0.002);
  model->request_success[1].fetch_add(2);
  m.count_rejection(RejectReason::kQueueFull);
  const std::string text = m.render(nullptr);
  for (const char* name :
       {"aurora:num_requests_running", "aurora:num_requests_waiting", "aurora:kv_cache_usage_perc",
        "aurora:prompt_tokens_total", "aurora:generation_tokens_total", "aurora:time_to_first_token_seconds",
        "aurora:inter_token_latency_seconds", "aurora:e2e_request_latency_seconds", "aurora:request_queue_time_seconds",
        "aurora:expert_load", "aurora:all_to_all_lower_bound_seconds"}) {
    INFO(name);
    CHECK(text.find(std::string("# TYPE ") + name + " ") != std::string::npos);
  }
  CHECK(text.find("aurora:request_success_total{model_name=\"tiny\",finished_reason=\"length\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("aurora:time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"0.0025\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("aurora:requests_rejected_total{reason=\"queue_full\"} 1\n") != std::string::npos);
}

TEST_CASE("a served model's counters and histograms are present at zero before any request", "[metrics]") {
  aurora::testing::FakeEngine engine;
  Metrics m;
  const std::string text = m.render(&engine);
  const std::string model = "model_name=\"fake-moe\"";
  for (const std::string& line : {
           "aurora:prompt_tokens_total{" + model + "} 0\n",
           "aurora:generation_tokens_total{" + model + "} 0\n",
           "aurora:request_success_total{" + model + ",finished_reason=\"stop\"} 0\n",
           "aurora:request_success_total{" + model + ",finished_reason=\"length\"} 0\n",
           "aurora:request_success_total{" + model + ",finished_reason=\"abort\"} 0\n",
           "aurora:request_success_total{" + model + ",finished_reason=\"error\"} 0\n",
           "aurora:time_to_first_token_seconds_bucket{" + model + ",le=\"+Inf\"} 0\n",
           "aurora:time_to_first_token_seconds_count{" + model + "} 0\n",
           "aurora:inter_token_latency_seconds_count{" + model + "} 0\n",
           "aurora:e2e_request_latency_seconds_sum{" + model + "} 0\n",
           "aurora:request_queue_time_seconds_count{" + model + "} 0\n",
       }) {
    INFO(line);
    CHECK(text.find(line) != std::string::npos);
  }
  // Once used, the model's series carry the real values (one series, not a zero and a real one).
  m.model("fake-moe")->prompt_tokens.fetch_add(7);
  const std::string used = m.render(&engine);
  CHECK(used.find("aurora:prompt_tokens_total{" + model + "} 7\n") != std::string::npos);
  CHECK(used.find("aurora:prompt_tokens_total{" + model + "} 0\n") == std::string::npos);
  engine.shutdown(std::chrono::milliseconds(0));
}
