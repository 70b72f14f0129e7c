// Request arrival times: a rate schedule (steps and linear ramps) and the seeded arrival process
// that draws Poisson or gamma gaps along it, with vLLM's semantics.
//
// Contract: ArrivalProcess::next() yields non-decreasing times in seconds since the start of the
// run; the same config and seed give the same times. Gaps follow `vllm bench serve`: gamma with
// shape = burstiness and scale = 1 / (rate * burstiness) (burstiness 1 is Poisson; infinite
// burstiness is constant spacing); an infinite rate sends everything at t = 0. A time-varying rate
// is followed exactly by time rescaling: unit-mean gaps are drawn in "operational time" and mapped
// back through the inverse of the cumulative rate. Not thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/rng.hpp"

namespace aurora::loadgen {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A piece of a rate schedule: the rate moves linearly from start to end over duration_s
// (start == end is a step). A constant schedule is one segment of infinite duration.
struct RateSegment {
  double start_rate = 0;  // requests per second
  double end_rate = 0;
  double duration_s = 0;
};

class RateSchedule {
 public:
  // `R@D` is a step at R req/s for D, `R1->R2@D` a linear ramp; segments are separated by commas.
  // D takes the suffix ms, s (default), m or h. Example: "2@30s, 2->8@60s, 8@30s".
  static Result<RateSchedule> parse(std::string_view text, const std::string& field = "--rate-schedule");
  static RateSchedule constant(double rate);  // rate may be kInfinity

  const std::vector<RateSegment>& segments() const { return segments_; }
  bool infinite_rate() const { return infinite_rate_; }
  double total_duration_s() const;      // kInfinity for a constant schedule
  double rate_at(double t_s) const;     // 0 after the end
  double cumulative(double t_s) const;  // expected arrivals in [0, t_s]
  // The time at which cumulative() reaches `count`; nullopt when the schedule ends first.
  std::optional<double> time_at_cumulative(double count) const;

  std::string describe() const;  // "2@30s,2->8@60s"

 private:
  std::vector<RateSegment> segments_;
  bool infinite_rate_ = false;
};

struct ArrivalConfig {
  RateSchedule schedule = RateSchedule::constant(kInfinity);
  double burstiness = 1.0;  // > 0; kInfinity = constant spacing
  uint64_t seed = 0;
  std::optional<int64_t> max_requests;  // stop after this many arrivals
  // vLLM's index-based ramp (--ramp-up-strategy linear|exponential): the rate for request i moves
  // from start to end as i goes from 0 to max_requests - 1. Needs max_requests; replaces schedule.
  std::string ramp_up_strategy;  // "", "linear" or "exponential"
  double ramp_up_start_rps = 0;
  double ramp_up_end_rps = 0;
  // vLLM rescales the gaps of a fixed-rate, fixed-count run so that the last arrival lands at
  // exactly N / rate. Applied only to a constant finite rate with max_requests and no ramp.
  bool normalize_total_span = true;
};

class ArrivalProcess {
 public:
  static Result<ArrivalProcess> create(const ArrivalConfig& config);

  // The next arrival time in seconds since the start; nullopt when the count or schedule is spent.
  std::optional<double> next();
  int64_t num_emitted() const { return emitted_; }

 private:
  explicit ArrivalProcess(const ArrivalConfig& config);
  double unit_gap();  // a gap with mean 1 in operational time
  double gap_at_rate(double rate);

  ArrivalConfig config_;
  Rng rng_;
  int64_t emitted_ = 0;
  double operational_time_ = 0;      // cumulative unit-rate "time" for schedules
  double last_time_s_ = 0;           // for index-based ramps
  std::vector<double> precomputed_;  // normalized fixed-rate run
};

}  // namespace aurora::loadgen
