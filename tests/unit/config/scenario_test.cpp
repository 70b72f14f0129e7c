#include "aurora/config/scenario.hpp"

#include <string>

#include <catch2/catch.hpp>

using aurora::config::parse_scenario;
using aurora::config::Scenario;

namespace {
const char* kMinimal = R"({"mode": "exclusive",
 "phase_latency_us": 0,
 "gpus": [{"bandwidth_gbps": 100, "compute_speed": 1.0}, {"bandwidth_gbps": 100, "compute_speed": 1.0}],
 "models": [{"name": "a",
             "layers": [{"traffic_bytes": [[0, 10], [20, 0]],
                         "gate_us": 5, "expert_us_per_mb": 20, "aggregate_us": 5}]}]})";

std::string error_of(const std::string& text) {
  auto r = parse_scenario(text);
  return r.ok() ? std::string("(no error)") : r.error().message;
}

// Replaces the first occurrence of `from` in the minimal scenario.
std::string minimal_with(const std::string& from, const std::string& to) {
  std::string s = kMinimal;
  const size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}
}  // namespace

TEST_CASE("the minimal scenario of the issue parses") {
  auto s = parse_scenario(kMinimal);
  REQUIRE(s.ok());
  CHECK(s->mode == aurora::config::ScenarioMode::kExclusive);
  REQUIRE(s->gpus.size() == 2);
  CHECK(s->gpus[1].send_gbps == 100);
  CHECK(s->gpus[1].recv_gbps == 100);
  REQUIRE(s->models.size() == 1);
  CHECK(s->models[0].num_experts == 2);
  CHECK(s->models[0].layers[0].traffic_bytes[1][0] == 20);
  CHECK(s->models[0].layers[0].expert_us_per_mb == 20);
}

TEST_CASE("invalid scenarios name the field and the value") {
  CHECK(error_of(minimal_with("[20, 0]", "[-4, 0]")) ==
        "models[0].layers[0].traffic_bytes[1][0]: must be >= 0, got -4");
  CHECK(error_of(minimal_with("[20, 0]", "[20, 0, 1]")) ==
        "models[0].layers[0].traffic_bytes[1]: must have 2 entries, got 3");
  CHECK(error_of(minimal_with("[[0, 10], [20, 0]]", "[[0, 10]]"))
            .rfind("models[0].layers[0].traffic_bytes[0]: must have 1 entries, got 2", 0) == 0);
  CHECK(error_of(minimal_with("[20, 0]", "[2.5, 0]")) ==
        "models[0].layers[0].traffic_bytes[1][0]: must be an integer, got 2.5");
  CHECK(error_of(minimal_with("{\"bandwidth_gbps\": 100, \"compute_speed\": 1.0}, {",
                              "{\"bandwidth_gbps\": 0, \"compute_speed\": 1.0}, {")) ==
        "gpus[0].bandwidth_gbps: must be > 0, got 0");
  CHECK(error_of(minimal_with("\"compute_speed\": 1.0}]", "\"compute_speed\": -1}]")) ==
        "gpus[1].compute_speed: must be > 0, got -1");
  CHECK(error_of(minimal_with("\"exclusive\"", "\"shared\"")) ==
        "mode: must be \"exclusive\" or \"colocated\", got \"shared\"");
  CHECK(error_of(minimal_with("\"exclusive\"", "\"colocated\"")) ==
        "models: colocated mode needs exactly 2 models, got 1");
  CHECK(error_of(minimal_with("\"gate_us\"", "\"gate_ms\"")) == "models[0].layers[0].gate_ms: unknown field");
  CHECK(error_of(minimal_with("\"gate_us\": 5", "\"gate_us\": -5")) ==
        "models[0].layers[0].gate_us: must be >= 0, got -5");
  CHECK(error_of(minimal_with("\"phase_latency_us\": 0", "\"phase_latency_us\": -1")) ==
        "phase_latency_us: must be in [0, 1e+06], got -1");
  CHECK(error_of(R"({"mode": "exclusive", "gpus": [], "models": []})") == "gpus: must list at least one GPU, got []");
  CHECK(error_of(minimal_with("\"gate_us\": 5,", "\"gate_us\": 5, \"x\": 1,")) ==
        "models[0].layers[0].x: unknown field");
  CHECK(error_of(minimal_with("\"mode\": \"exclusive\",", "")) == "mode: is required");
  CHECK(error_of("{\"mode\": ").rfind("scenario: invalid JSON", 0) == 0);
}

TEST_CASE("models that do not fit in memory are rejected") {
  std::string s = minimal_with("\"compute_speed\": 1.0}, {", "\"compute_speed\": 1.0, \"memory_gb\": 1}, {");
  s = s.replace(s.find("\"compute_speed\": 1.0}]"), 22, "\"compute_speed\": 1.0, \"memory_gb\": 1}]");
  s = s.replace(s.find("\"name\": \"a\","), 12, "\"name\": \"a\", \"expert_memory_mb\": 1500,");
  // 2 experts x 1 layer x 1.5 GB > 2 x 1 GB.
  CHECK(error_of(s) == "models: do not fit in GPU memory: experts need 3 GB, the GPUs have 2 GB");
}

TEST_CASE("gpu-form traffic has one row per GPU, and counts expand") {
  const char* text = R"({"mode": "exclusive", "gpus": [{"count": 2, "bandwidth_gbps": 400}],
    "models": [{"name": "m", "traffic": "gpus", "top_k": 2,
                "layers": [{"traffic_bytes": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}]})";
  auto s = parse_scenario(text);
  REQUIRE(s.ok());
  CHECK(s->gpus.size() == 2);
  CHECK(s->models[0].num_experts == 4);
  CHECK(s->models[0].traffic_form == aurora::config::TrafficForm::kGpus);
  std::string three_rows = text;
  three_rows.replace(three_rows.find("[5, 6, 7, 8]]"), 13, "[5, 6, 7, 8], [1, 1, 1, 1]]");
  CHECK(error_of(three_rows) == "models[0].layers[0].traffic_bytes: must have 2 rows, got 3");
}
