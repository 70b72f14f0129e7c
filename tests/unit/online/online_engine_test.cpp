// Online Aurora in the engine (embedded model, 4 CPU ranks): forced migrations under load leave
// every stream's tokens identical to a run without migration; a planner that throws, fails or
// overruns its budget leaves the plan in force; a steady mix does not flap; freeze, unfreeze and
// trigger; the window order gives the same tokens as the live one.
#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "engine_test_support.hpp"
#include "online/online_engine.hpp"
#include "online_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
using namespace std::chrono_literals;

namespace {

constexpr int32_t kRanks = 4;

EngineOptions base_options() {
  EngineOptions o;
  o.num_ranks = kRanks;
  o.max_num_seqs = 32;
  o.max_num_batched_tokens = 256;
  o.kv_cache_tokens = 32768;
  o.online.replan_interval_ms = 20;
  o.online.stats_half_life_s = 0.5;
  return o;
}

// Options that switch at every planner run the policy asks for.
EngineOptions eager_options() { return switch_at_every_run(base_options()); }

std::vector<std::string> prompts() {
  const char* kinds[] = {"The river runs quietly past the old mill, and the miller sings. ",
                         "def area(r):\n    return 3.14159 * r * r  # [x] {y}\n",
                         "4096 8192 16384 32768 65536 1234567890 ",
                         "Where is the LIBRARY? Ask the Keeper; she knows. "};
  std::vector<std::string> out;
  for (int i = 0; i < 24; ++i) {
    std::string p = kinds[i % 4];
    p += std::to_string(i * 37);
    out.push_back(p);
  }
  return out;
}

struct Run {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<FinishReason> reasons;
  std::vector<int64_t> first_version, last_version;  // plan version at a stream's first and last token
};

Run run_streams(Engine& engine, int32_t max_tokens) {
  const auto texts = prompts();
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  Run run;
  run.first_version.assign(texts.size(), -1);
  run.last_version.assign(texts.size(), -1);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto sink = std::make_shared<CollectingSink>();
    // Called on the engine thread at every token: records the plan version the token was made with.
    sink->on_delta_hook = [&engine, &run, i](int n) {
      const int64_t v = engine.stats().plan_version;
      if (n == 1) run.first_version[i] = v;
      run.last_version[i] = v;
      return true;
    };
    GenerationRequest r = make_request(bytes_of(texts[i]), max_tokens);
    r.sampling.ignore_eos = true;
    REQUIRE(engine.submit(r, sink).ok());
    sinks.push_back(sink);
  }
  for (auto& s : sinks) {
    REQUIRE(s->wait(120s));
    run.tokens.push_back(s->token_ids());
    run.reasons.push_back(s->completion.reason);
  }
  return run;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// Keeps the engine busy with a steady stream of short requests until stop.
class Load {
 public:
  Load(Engine& engine, std::string text) : engine_(engine), text_(std::move(text)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        auto sink = std::make_shared<CollectingSink>();
        GenerationRequest r = make_request(bytes_of(text_), 8);
        r.sampling.ignore_eos = true;
        if (engine_.submit(r, sink).ok()) {
          sink->wait(30s);
          ok_ += sink->completion.reason == FinishReason::kLength;
        }
      }
    });
  }
  ~Load() {
    stop_ = true;
    thread_.join();
  }
  int completed() const { return ok_.load(); }

 private:
  Engine& engine_;
  std::string text_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("forced migrations under load leave every stream's tokens unchanged", "[online][engine][migration]") {
  EngineOptions off = base_options();
  off.online.replan = ReplanMode::kOff;
  off.online.order_source = OrderSource::kLive;
  auto reference_engine = create_engine(off);
  REQUIRE(reference_engine.ok());
  const Run reference = run_streams(**reference_engine, 64);
  (*reference_engine)->shutdown(0ms);
  CHECK((*reference_engine)->stats().plan_version == 1);

  auto engine = create_engine_with_policy(eager_options(), rotate_everything);
  REQUIRE(engine.ok());
  const Run moved = run_streams(**engine, 64);
  const EngineStats stats = (*engine)->stats();
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  (*engine)->shutdown(0ms);

  REQUIRE(moved.tokens.size() == reference.tokens.size());
  int streams_across_switches = 0;
  for (size_t i = 0; i < moved.tokens.size(); ++i) {
    INFO("stream " << i);
    CHECK(moved.reasons[i] == FinishReason::kLength);
    CHECK(moved.tokens[i].size() == 64);
    CHECK(moved.tokens[i] == reference.tokens[i]);
    streams_across_switches += moved.last_version[i] > moved.first_version[i];
  }
  // Migrations really happened while the streams ran, most streams saw at least one switch.
  CHECK(stats.plan_version >= 3);
  CHECK(stats.expert_migrations_total >= 2 * 16 * 4);
  CHECK(snap.switches_total >= 2);
  CHECK(streams_across_switches >= 12);
  CHECK(snap.planner_failures_total == 0);
}

TEST_CASE("a planner that throws or fails leaves the plan in force", "[online][engine][failure]") {
  std::atomic<int> calls{0};
  auto throwing = [&](const PolicyInput&) -> Result<Proposal> {
    if (++calls % 2 == 0) return Error::make(ErrorCode::kInternal, "injected failure");
    throw std::runtime_error("injected exception");
  };
  auto engine = create_engine_with_policy(eager_options(), throwing);
  REQUIRE(engine.ok());
  const auto owners_before = (*engine)->plan_snapshot().models.at(0).layers.at(0).owner;
  {
    Load load(**engine, "12345 67890 24680 13579 ");
    REQUIRE(wait_until([&] { return (*engine)->plan_snapshot().planner_failures_total >= 4; }, 20s));
    CHECK(wait_until([&] { return load.completed() >= 3; }, 20s));
  }
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  CHECK(snap.plan_version == 1);
  CHECK(snap.expert_migrations_total == 0);
  CHECK(snap.switches_total == 0);
  CHECK(snap.models.at(0).layers.at(0).owner == owners_before);
  CHECK(snap.last_decision.find("failed") != std::string::npos);
  CHECK(snap.last_decision.find("plan in force stays") != std::string::npos);
  // The engine still serves, and correctly.
  const Run after = run_streams(**engine, 8);
  for (auto reason : after.reasons) CHECK(reason == FinishReason::kLength);
  (*engine)->shutdown(0ms);
}

TEST_CASE("a planner that overruns its budget leaves the plan in force", "[online][engine][failure]") {
  EngineOptions o = eager_options();
  o.online.plan_budget_ms = 10;
  auto slow = [](const PolicyInput& in) -> Result<Proposal> {
    std::this_thread::sleep_for(60ms);
    return rotate_everything(in);  // a switch it would make, were it in time
  };
  auto engine = create_engine_with_policy(o, slow);
  REQUIRE(engine.ok());
  {
    Load load(**engine, "The quick brown fox jumps over the lazy dog. ");
    REQUIRE(wait_until([&] { return (*engine)->plan_snapshot().planner_overruns_total >= 3; }, 20s));
  }
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  CHECK(snap.plan_version == 1);
  CHECK(snap.expert_migrations_total == 0);
  CHECK(snap.last_decision.find("overran") != std::string::npos);
  (*engine)->shutdown(0ms);
}

TEST_CASE("a steady mix does not flap", "[online][engine][hysteresis]") {
  EngineOptions o = base_options();
  o.online.replan = ReplanMode::kFull;
  o.online.replan_interval_ms = 25;
  o.online.min_dwell_s = 0.2;
  o.online.confirmations = 2;
  auto engine = create_engine(o);
  REQUIRE(engine.ok());
  {
    Load digits(**engine, "1234567890 0987654321 13579 24680 ");
    Load more(**engine, "31415 92653 58979 32384 62643 ");
    REQUIRE(wait_until([&] { return (*engine)->plan_snapshot().planner_runs_total >= 60; }, 30s));
  }
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  // At most one switch (from the start-up plan to one for this mix), never back and forth.
  CHECK(snap.switches_total <= 1);
  CHECK(snap.history.size() == static_cast<size_t>(snap.switches_total));
  CHECK(snap.plan_version == 1 + snap.switches_total);
  CHECK(snap.recovered_fraction > 0.95);
  (*engine)->shutdown(0ms);
}

TEST_CASE("freeze holds the placement; unfreeze and trigger let it move", "[online][engine][controls]") {
  EngineOptions o = eager_options();
  o.online.replan_interval_ms = 30000;  // only triggered runs
  auto engine = create_engine_with_policy(o, rotate_everything);
  REQUIRE(engine.ok());
  Engine& e = **engine;
  REQUIRE(e.replan(ReplanAction::kFreeze).ok());
  {
    Load load(e, "Hello there, general. ");
    REQUIRE(wait_until([&] { return load.completed() >= 1; }, 20s));
    REQUIRE(e.replan(ReplanAction::kTrigger).ok());
    REQUIRE(wait_until([&] { return e.plan_snapshot().planner_runs_total >= 1; }, 20s));
    PlanSnapshot snap = e.plan_snapshot();
    CHECK(snap.frozen);
    CHECK(snap.plan_version == 1);
    CHECK(snap.last_decision.find("frozen") == 0);
    REQUIRE(e.replan(ReplanAction::kUnfreeze).ok());
    REQUIRE(e.replan(ReplanAction::kTrigger).ok());
    REQUIRE(wait_until([&] { return e.plan_snapshot().plan_version == 2; }, 20s));
    snap = e.plan_snapshot();
    CHECK_FALSE(snap.frozen);
    CHECK(snap.history.size() == 1);
    CHECK(snap.expert_migrations_total > 0);
  }
  e.shutdown(0ms);
}

TEST_CASE("the snapshot shows the deployment and the live statistics", "[online][engine][snapshot]") {
  EngineOptions o = base_options();
  o.online.replan = ReplanMode::kOrder;
  auto engine = create_engine(o);
  REQUIRE(engine.ok());
  {
    Load load(**engine, "0123456789 9876543210 ");
    REQUIRE(wait_until([&] { return (*engine)->plan_snapshot().planner_runs_total >= 3; }, 20s));
  }
  const PlanSnapshot s = (*engine)->plan_snapshot();
  CHECK(s.enabled);
  CHECK(s.replan_mode == "order");
  CHECK(s.placement_supported);
  REQUIRE(s.models.size() == 1);
  const auto& m = s.models[0];
  CHECK(m.num_ranks == kRanks);
  CHECK(m.ranks.size() == kRanks);
  REQUIRE(m.layers.size() == 4);  // the embedded model: 4 MoE layers
  double total = 0;
  for (const auto& l : m.layers) {
    CHECK(l.owner.size() == 16);
    CHECK(l.expert_load.size() == 16);
    CHECK(l.traffic_bytes.size() == kRanks * kRanks);
    for (double v : l.expert_load) total += v;
    CHECK(l.load_balance >= 1.0);
    CHECK(l.a2a_lower_bound_s > 0);
    CHECK(l.a2a_predicted_s >= l.a2a_lower_bound_s * (1 - 1e-9));
    CHECK(l.a2a_measured_s > 0);
  }
  CHECK(total > 0);
  // Digits only: the structured router sends most of the traffic to few experts.
  CHECK(m.layers[0].load_balance > 2.0);
  CHECK(s.predicted_current_s > 0);
  CHECK(s.predicted_fresh_s > 0);
  CHECK(s.timeline.size() >= 3);
  double busy = 0;
  for (const auto& r : m.ranks) busy += r.expert_seconds_per_step;
  CHECK(busy > 0);
  (*engine)->shutdown(0ms);
}

TEST_CASE("window and auto orders give the live order's tokens", "[online][engine][order]") {
  EngineOptions live = base_options();
  live.online.replan = ReplanMode::kOrder;
  live.online.order_source = OrderSource::kLive;
  auto a = create_engine(live);
  REQUIRE(a.ok());
  const Run reference = run_streams(**a, 32);
  (*a)->shutdown(0ms);
  for (OrderSource source : {OrderSource::kWindow, OrderSource::kAuto}) {
    EngineOptions o = live;
    o.online.order_source = source;
    auto b = create_engine(o);
    REQUIRE(b.ok());
    {
      // Let the window learn the traffic, so that templates are in use.
      Load warm(**b, "The river runs quietly past the old mill. 42 ");
      REQUIRE(wait_until([&] { return (*b)->plan_snapshot().planner_runs_total >= 3; }, 20s));
      if (source == OrderSource::kAuto) {
        // ... and until every layer has costed both sources often enough for the measured choice.
        CHECK(wait_until(
            [&] {
              const PlanSnapshot now = (*b)->plan_snapshot();
              for (const auto& l : now.models.at(0).layers) {
                if (l.order_decision.empty() || l.order_decision.find("measuring") != std::string::npos) return false;
              }
              return true;
            },
            60s));
      }
    }
    const Run run = run_streams(**b, 32);
    const PlanSnapshot snap = (*b)->plan_snapshot();
    (*b)->shutdown(0ms);
    for (size_t i = 0; i < run.tokens.size(); ++i) CHECK(run.tokens[i] == reference.tokens[i]);
    if (source == OrderSource::kWindow) {
      int window_layers = 0;
      for (const auto& l : snap.models.at(0).layers) window_layers += l.order_source == "window";
      CHECK(window_layers == 4);
    }
    if (source == OrderSource::kAuto) {
      // Every layer reports the measured comparison behind its order source (or that it is measuring).
      for (const auto& l : snap.models.at(0).layers) {
        INFO(l.order_decision);
        CHECK((l.order_decision.rfind("live:", 0) == 0 || l.order_decision.rfind("window:", 0) == 0));
        CHECK(l.order_decision.find("us of exchange") != std::string::npos);
      }
    }
  }
}

TEST_CASE("one rank has no online planner", "[online][engine]") {
  EngineOptions o;
  auto engine = create_engine(o);
  REQUIRE(engine.ok());
  CHECK_FALSE((*engine)->plan_snapshot().enabled);
  auto r = (*engine)->replan(ReplanAction::kTrigger);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::kUnsupported);
  (*engine)->shutdown(0ms);
  EngineOptions bad = base_options();
  bad.online.rank_speeds = {1.0, 2.0};
  auto refused = create_engine(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().field == "engine.online.rank_speeds");
}
