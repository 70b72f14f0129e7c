// The emulated cluster of CPU ranks (rank_emulation.hpp): flags and validation name the flag or
// field and the value; paced ranks give exactly the unpaced tokens; a rank of speed s spends 1/s as
// long per expert row; an exchange takes at least its lower bound at the emulated link speed.
#include <catch2/catch.hpp>

#include "aurora/runtime/engine.hpp"
#include "aurora/runtime/rank_emulation.hpp"
#include "engine_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
using namespace std::chrono_literals;

TEST_CASE("emulation flags set their fields; bad values name the flag and the value", "[online][emulation]") {
  RankEmulation e;
  CHECK(*apply_emulation_flag(e, "--emulate-link-gbps", "2.5"));
  CHECK(e.link_gbps == 2.5);
  CHECK(*apply_emulation_flag(e, "--emulate-phase-latency-us", "20"));
  CHECK(e.phase_latency_us == 20);
  CHECK(*apply_emulation_flag(e, "--emulate-expert-us", "100"));
  CHECK(e.expert_us_per_row == 100);
  CHECK(*apply_emulation_flag(e, "--emulate-rank-speeds", "1,1,0.5"));
  CHECK(e.rank_speeds == std::vector<double>{1, 1, 0.5});
  CHECK_FALSE(*apply_emulation_flag(e, "--replan", "full"));
  for (const auto& h : emulation_flag_help()) {
    const std::string flag = h.flag;
    auto bad = apply_emulation_flag(e, flag, "fast");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().field == flag);
    CHECK(bad.error().message.find("fast") != std::string::npos);
  }
  auto negative = apply_emulation_flag(e, "--emulate-link-gbps", "-1");
  REQUIRE_FALSE(negative.ok());
  CHECK(negative.error().message.find("-1") != std::string::npos);
}

TEST_CASE("emulation is validated against the ranks and the backend", "[online][emulation]") {
  RankEmulation e;
  CHECK(validate_rank_emulation(e, 4, true).ok());
  CHECK(validate_rank_emulation(e, 4, false).ok());  // off: fine anywhere
  e.expert_us_per_row = 100;
  e.rank_speeds = {1, 1, 1};
  auto r = validate_rank_emulation(e, 4, true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "engine.emulation.rank_speeds");
  e.rank_speeds = {1, 1, 1, 0.5};
  CHECK(validate_rank_emulation(e, 4, true).ok());
  r = validate_rank_emulation(e, 4, false);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("CPU") != std::string::npos);
  RankEmulation speeds_only;
  speeds_only.rank_speeds = {1, 0.5};
  r = validate_rank_emulation(speeds_only, 2, true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("--emulate-expert-us") != std::string::npos);
  RankEmulation latency_only;
  latency_only.phase_latency_us = 10;
  CHECK_FALSE(validate_rank_emulation(latency_only, 2, true).ok());
}

namespace {

std::vector<std::vector<int32_t>> generate_all(Engine& engine) {
  const char* texts[] = {"The river runs quietly past the old mill. ", "def f(x): return [x] * 3 # {y}\n",
                         "4096 8192 16384 32768 ", "Where is the LIBRARY? Ask the Keeper. "};
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const char* t : texts) {
    auto sink = std::make_shared<CollectingSink>();
    GenerationRequest r = make_request(bytes_of(t), 6);
    r.sampling.ignore_eos = true;
    REQUIRE(engine.submit(r, sink).ok());
    sinks.push_back(sink);
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& s : sinks) {
    REQUIRE(s->wait(60s));
    out.push_back(s->token_ids());
  }
  return out;
}

}  // namespace

TEST_CASE("paced ranks give the unpaced tokens, and the slow rank is slow", "[online][emulation][engine]") {
  EngineOptions o;
  o.num_ranks = 4;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 256;
  o.kv_cache_tokens = 8192;
  o.online.replan = ReplanMode::kOff;  // the default placement: every rank holds experts of every class
  o.online.link_gbps = 1.0;
  o.online.phase_latency_us = 10;
  auto plain = create_engine(o);
  REQUIRE(plain.ok());
  const auto reference = generate_all(**plain);
  (*plain)->shutdown(0ms);

  o.emulation.link_gbps = 1.0;
  o.emulation.phase_latency_us = 10;
  o.emulation.expert_us_per_row = 150;
  o.emulation.rank_speeds = {1, 1, 1, 0.4};
  auto paced = create_engine(o);
  REQUIRE(paced.ok());
  CHECK(generate_all(**paced) == reference);
  const PlanSnapshot snap = (*paced)->plan_snapshot();
  (*paced)->shutdown(0ms);
  const auto& ranks = snap.models.at(0).ranks;
  std::vector<double> per_row;
  for (const auto& r : ranks) {
    REQUIRE(r.rows_per_step > 0);
    per_row.push_back(r.expert_seconds_per_step / r.rows_per_step);
  }
  for (int r = 0; r < 3; ++r) CHECK(per_row[static_cast<size_t>(r)] >= 150e-6 * 0.95);
  const double fast = (per_row[0] + per_row[1] + per_row[2]) / 3;
  CHECK(per_row[3] / fast == Approx(1 / 0.4).epsilon(0.35));
  // The exchanges took at least their per-port bound at the emulated link speed.
  int with_traffic = 0;
  for (const auto& l : snap.models.at(0).layers) {
    if (l.a2a_lower_bound_s <= 0) continue;
    ++with_traffic;
    CHECK(l.a2a_measured_s >= l.a2a_lower_bound_s * 0.99);
  }
  CHECK(with_traffic > 0);
}
