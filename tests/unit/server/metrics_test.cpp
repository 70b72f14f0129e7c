// Metrics: Prometheus text exposition, cumulative histogram buckets, vLLM's names under aurora:.
#include "metrics.hpp"

#include <catch2/catch.hpp>

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
