#include "aurora/config/scenario.hpp"

#include <set>
#include <sstream>

#include "aurora/config/json.hpp"

namespace aurora::config {
namespace {

constexpr int kMaxGpus = 4096;
constexpr int kMaxExperts = 4096;

std::string fmt(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

ScenarioGpu parse_gpu(const JsonValue& v) {
  v.reject_unknown_keys({"bandwidth_gbps", "send_gbps", "recv_gbps", "compute_speed", "memory_gb", "count", "type"});
  ScenarioGpu g;
  const auto bw = v.find("bandwidth_gbps");
  const auto send = v.find("send_gbps");
  const auto recv = v.find("recv_gbps");
  if (!bw && !(send && recv)) v["bandwidth_gbps"];  // fails: "gpus[i].bandwidth_gbps: is required"
  if (bw) g.send_gbps = g.recv_gbps = bw->positive_double();
  if (send) g.send_gbps = send->positive_double();
  if (recv) g.recv_gbps = recv->positive_double();
  if (auto s = v.find("compute_speed")) g.compute_speed = s->positive_double();
  if (auto m = v.find("memory_gb")) g.memory_gb = m->non_negative_double();
  if (auto t = v.find("type")) t->as_string();
  return g;
}

ScenarioLayer parse_layer(const JsonValue& v, int expect_rows, int& expect_cols, bool square) {
  v.reject_unknown_keys({"traffic_bytes", "gate_us", "expert_us_per_mb", "aggregate_us"});
  ScenarioLayer layer;
  const JsonValue rows = v["traffic_bytes"];
  const std::vector<JsonValue> items = rows.items();
  if (items.empty()) rows.fail("must have at least one row, got []");
  if (expect_rows > 0 && static_cast<int>(items.size()) != expect_rows)
    rows.fail("must have " + std::to_string(expect_rows) + " rows, got " + std::to_string(items.size()));
  if (static_cast<int>(items.size()) > kMaxExperts) rows.fail("too many rows (" + std::to_string(items.size()) + ")");
  for (const JsonValue& row : items) {
    const std::vector<JsonValue> cells = row.items();
    const int want = square ? static_cast<int>(items.size()) : expect_cols;
    if (want > 0 && static_cast<int>(cells.size()) != want)
      row.fail("must have " + std::to_string(want) + " entries, got " + std::to_string(cells.size()));
    if (cells.empty()) row.fail("must not be empty");
    if (expect_cols <= 0) expect_cols = static_cast<int>(cells.size());
    std::vector<int64_t> out;
    out.reserve(cells.size());
    for (const JsonValue& c : cells) {
      const int64_t b = c.as_int();
      if (b < 0) c.fail("must be >= 0, got " + std::to_string(b));
      if (b > (int64_t{1} << 50)) c.fail("must be <= 2^50 bytes, got " + std::to_string(b));
      out.push_back(b);
    }
    layer.traffic_bytes.push_back(std::move(out));
  }
  if (auto x = v.find("gate_us")) layer.gate_us = x->non_negative_double();
  if (auto x = v.find("expert_us_per_mb")) layer.expert_us_per_mb = x->non_negative_double();
  if (auto x = v.find("aggregate_us")) layer.aggregate_us = x->non_negative_double();
  return layer;
}

ScenarioModel parse_model(const JsonValue& v, int num_gpus) {
  v.reject_unknown_keys({"name", "traffic", "top_k", "expert_memory_mb", "layers"});
  ScenarioModel m;
  m.name = v["name"].as_string();
  if (m.name.empty()) v["name"].fail("must not be empty");
  if (auto t = v.find("traffic")) {
    const std::string form = t->as_string();
    if (form == "experts")
      m.traffic_form = TrafficForm::kExperts;
    else if (form == "gpus")
      m.traffic_form = TrafficForm::kGpus;
    else
      t->fail("must be \"experts\" or \"gpus\", got \"" + form + "\"");
  }
  if (auto k = v.find("top_k")) m.top_k = static_cast<int>(k->int_in(1, 64));
  if (auto mem = v.find("expert_memory_mb")) m.expert_memory_mb = mem->non_negative_double();
  const JsonValue layers = v["layers"];
  const std::vector<JsonValue> items = layers.items();
  if (items.empty()) layers.fail("must have at least one layer, got []");
  const bool square = m.traffic_form == TrafficForm::kExperts;
  int rows = square ? 0 : num_gpus;
  int cols = 0;
  for (const JsonValue& l : items) {
    m.layers.push_back(parse_layer(l, rows, cols, square));
    if (square) rows = static_cast<int>(m.layers.back().traffic_bytes.size());
  }
  m.num_experts = cols;
  if (m.top_k > m.num_experts)
    v["top_k"].fail("must be <= the number of experts (" + std::to_string(m.num_experts) + "), got " +
                    std::to_string(m.top_k));
  return m;
}

Scenario parse_root(const JsonValue& root) {
  root.reject_unknown_keys({"name", "mode", "phase_latency_us", "gpus", "models", "placement", "seed"});
  Scenario s;
  if (auto n = root.find("name")) s.name = n->as_string();
  const JsonValue mode = root["mode"];
  const std::string m = mode.as_string();
  if (m == "exclusive")
    s.mode = ScenarioMode::kExclusive;
  else if (m == "colocated")
    s.mode = ScenarioMode::kColocated;
  else
    mode.fail("must be \"exclusive\" or \"colocated\", got \"" + m + "\"");
  if (auto p = root.find("phase_latency_us")) s.phase_latency_us = p->double_in(0, 1e6);
  if (auto seed = root.find("seed")) s.seed = static_cast<uint64_t>(seed->int_in(0, int64_t{1} << 53));

  const JsonValue gpus = root["gpus"];
  for (const JsonValue& g : gpus.items()) {
    const ScenarioGpu spec = parse_gpu(g);
    int count = 1;
    if (auto c = g.find("count")) count = static_cast<int>(c->int_in(1, kMaxGpus));
    for (int k = 0; k < count; ++k) s.gpus.push_back(spec);
    if (static_cast<int>(s.gpus.size()) > kMaxGpus) gpus.fail("more than " + std::to_string(kMaxGpus) + " GPUs");
  }
  if (s.gpus.empty()) gpus.fail("must list at least one GPU, got []");
  const int n = static_cast<int>(s.gpus.size());

  const JsonValue models = root["models"];
  const std::vector<JsonValue> items = models.items();
  if (items.empty()) models.fail("must list at least one model, got []");
  std::set<std::string> names;
  for (const JsonValue& mv : items) {
    s.models.push_back(parse_model(mv, n));
    if (!names.insert(s.models.back().name).second)
      mv["name"].fail("duplicate model name \"" + s.models.back().name + "\"");
  }
  if (s.mode == ScenarioMode::kColocated) {
    if (s.models.size() != 2)
      models.fail("colocated mode needs exactly 2 models, got " + std::to_string(s.models.size()));
    if (s.models[0].layers.size() != s.models[1].layers.size())
      models[1]["layers"].fail("colocated models need the same number of layers (" +
                               std::to_string(s.models[0].layers.size()) + "), got " +
                               std::to_string(s.models[1].layers.size()));
  }

  if (auto p = root.find("placement")) {
    p->reject_unknown_keys({"max_replicas_per_expert", "max_extra_replicas"});
    if (auto r = p->find("max_replicas_per_expert")) s.max_replicas_per_expert = static_cast<int>(r->int_in(1, n));
    if (auto r = p->find("max_extra_replicas")) s.max_extra_replicas = static_cast<int>(r->int_in(0, kMaxExperts));
  }

  // Memory: every layer's experts must be resident; a necessary condition here, the exact per-GPU check
  // happens on the deployment.
  bool limited = true;
  double have_mb = 0;
  for (const ScenarioGpu& g : s.gpus) {
    limited = limited && g.memory_gb > 0;
    have_mb += g.memory_gb * 1000.0;
  }
  if (limited) {
    double need_mb = 0;
    for (const ScenarioModel& mdl : s.models)
      need_mb += mdl.expert_memory_mb * mdl.num_experts * static_cast<double>(mdl.layers.size());
    if (need_mb > have_mb)
      models.fail("do not fit in GPU memory: experts need " + fmt(need_mb / 1000.0) + " GB, the GPUs have " +
                  fmt(have_mb / 1000.0) + " GB");
  }
  return s;
}

}  // namespace

const char* scenario_mode_name(ScenarioMode mode) {
  return mode == ScenarioMode::kExclusive ? "exclusive" : "colocated";
}

Result<Scenario> parse_scenario(std::string_view json_text, const std::string& what) {
  auto doc = JsonDocument::parse(json_text, what);
  if (!doc) return doc.error();
  return capture_errors([&] { return parse_root(doc->root()); });
}

Result<Scenario> load_scenario(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) return text.error();
  return parse_scenario(*text, path);
}

}  // namespace aurora::config
