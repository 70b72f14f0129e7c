// The online flags and their validation: errors name the flag or field and the value.
#include <catch2/catch.hpp>

#include "aurora/runtime/online.hpp"

using namespace aurora;
using namespace aurora::runtime;

TEST_CASE("online flags set their options", "[online][options]") {
  OnlineOptions o;
  CHECK(*apply_online_flag(o, "--replan", "order"));
  CHECK(o.replan == ReplanMode::kOrder);
  CHECK(*apply_online_flag(o, "--order-source", "window"));
  CHECK(o.order_source == OrderSource::kWindow);
  CHECK(*apply_online_flag(o, "--replan-min-gain", "0.1"));
  CHECK(o.min_gain == 0.1);
  CHECK(*apply_online_flag(o, "--replan-dwell-s", "2.5"));
  CHECK(o.min_dwell_s == 2.5);
  CHECK(*apply_online_flag(o, "--replan-confirmations", "3"));
  CHECK(o.confirmations == 3);
  CHECK(*apply_online_flag(o, "--rank-speeds", "1,1,0.5,0.5"));
  CHECK(o.rank_speeds == std::vector<double>{1, 1, 0.5, 0.5});
  CHECK(*apply_online_flag(o, "--rank-speeds", "measured"));
  CHECK(o.rank_speeds.empty());
  CHECK(o.measure_rank_speeds);
  CHECK(o.expert_spare_slots == -1);  // auto
  CHECK(*apply_online_flag(o, "--expert-spare-slots", "6"));
  CHECK(o.expert_spare_slots == 6);
  CHECK(*apply_online_flag(o, "--expert-spare-slots", "auto"));
  CHECK(o.expert_spare_slots == -1);
  CHECK_FALSE(*apply_online_flag(o, "--max-num-seqs", "3"));
  for (const auto& h : online_flag_help()) {
    CHECK(std::string(h.flag).rfind("--", 0) == 0);
    CHECK(std::string(h.help).size() > 10);
  }
}

TEST_CASE("bad online flags name the flag and the value", "[online][options]") {
  OnlineOptions o;
  auto r = apply_online_flag(o, "--replan", "sometimes");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("--replan") != std::string::npos);
  CHECK(r.error().message.find("sometimes") != std::string::npos);
  r = apply_online_flag(o, "--replan-min-gain", "2");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "--replan-min-gain");
  r = apply_online_flag(o, "--rank-speeds", "1,x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("1,x") != std::string::npos);
  r = apply_online_flag(o, "--replan-interval-ms", "fast");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("fast") != std::string::npos);
  r = apply_online_flag(o, "--expert-spare-slots", "-2");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().field == "--expert-spare-slots");
  CHECK(r.error().message.find("-2") != std::string::npos);
  CHECK_FALSE(parse_replan_action("explode").ok());
  CHECK(*parse_replan_action("freeze") == ReplanAction::kFreeze);
}

TEST_CASE("online options are validated against the rank count", "[online][options]") {
  OnlineOptions o;
  CHECK(validate_online_options(o, 4).ok());
  o.rank_speeds = {1, 1, 1};
  auto v = validate_online_options(o, 4);
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().field == "engine.online.rank_speeds");
  o.rank_speeds = {1, 1, 0, 1};
  v = validate_online_options(o, 4);
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().field == "engine.online.rank_speeds[2]");
  o = OnlineOptions{};
  o.min_gain = 1.5;
  CHECK(validate_online_options(o, 4).error().field == "engine.online.min_gain");
  o = OnlineOptions{};
  o.expert_spare_slots = -3;
  CHECK(validate_online_options(o, 4).error().field == "engine.online.expert_spare_slots");
}
