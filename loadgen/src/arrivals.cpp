#include "aurora/loadgen/arrivals.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace aurora::loadgen {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  if (s == "inf" || s == "INF" || s == "Inf") return kInfinity;
  std::string tmp(s);
  char* end = nullptr;
  double v = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<double> parse_duration_s(std::string_view s) {
  s = trim(s);
  double scale = 1.0;
  if (s.ends_with("ms")) {
    scale = 1e-3;
    s.remove_suffix(2);
  } else if (s.ends_with("s")) {
    s.remove_suffix(1);
  } else if (s.ends_with("m")) {
    scale = 60.0;
    s.remove_suffix(1);
  } else if (s.ends_with("h")) {
    scale = 3600.0;
    s.remove_suffix(1);
  }
  auto v = parse_number(s);
  if (!v || !std::isfinite(*v)) return std::nullopt;
  return *v * scale;
}

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// Expected arrivals within the first u seconds of a segment.
double segment_cumulative(const RateSegment& s, double u) {
  if (u <= 0) return 0;
  if (std::isinf(s.duration_s)) return s.start_rate * u;
  return s.start_rate * u + (s.end_rate - s.start_rate) * u * u / (2.0 * s.duration_s);
}

// Inverse of segment_cumulative for a count inside the segment.
double segment_inverse(const RateSegment& s, double count) {
  if (std::isinf(s.duration_s) || s.start_rate == s.end_rate) return count / s.start_rate;
  const double a = (s.end_rate - s.start_rate) / (2.0 * s.duration_s);
  const double b = s.start_rate;
  // Root of a u^2 + b u - count = 0, written to stay accurate when a is small.
  return 2.0 * count / (b + std::sqrt(std::max(0.0, b * b + 4.0 * a * count)));
}

}  // namespace

Result<RateSchedule> RateSchedule::parse(std::string_view text, const std::string& field) {
  RateSchedule schedule;
  std::string_view rest = trim(text);
  if (rest.empty()) return Error::invalid(field, "is empty; expected segments like \"2@30s,2->8@60s\"");
  size_t index = 0;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : trim(rest.substr(comma + 1));
    const std::string where = field + "[" + std::to_string(index++) + "]";
    if (comma != std::string_view::npos && rest.empty()) {
      return Error::invalid(field + "[" + std::to_string(index) + "]", "is empty (a trailing comma?)");
    }
    const size_t at = item.find('@');
    if (at == std::string_view::npos) {
      return Error::invalid(where, "expected RATE@DURATION or RATE->RATE@DURATION, got \"" + std::string(item) + "\"");
    }
    std::string_view rates = item.substr(0, at);
    auto duration = parse_duration_s(item.substr(at + 1));
    if (!duration || *duration <= 0) {
      return Error::invalid(
          where, "duration must be > 0 (suffix ms, s, m or h), got \"" + std::string(trim(item.substr(at + 1))) + "\"");
    }
    RateSegment seg;
    seg.duration_s = *duration;
    const size_t arrow = rates.find("->");
    auto r0 = parse_number(arrow == std::string_view::npos ? rates : rates.substr(0, arrow));
    auto r1 = arrow == std::string_view::npos ? r0 : parse_number(rates.substr(arrow + 2));
    if (!r0 || !r1 || !std::isfinite(*r0) || !std::isfinite(*r1) || *r0 < 0 || *r1 < 0) {
      return Error::invalid(where, "rates must be finite numbers >= 0, got \"" + std::string(trim(rates)) + "\"");
    }
    seg.start_rate = *r0;
    seg.end_rate = *r1;
    schedule.segments_.push_back(seg);
  }
  return schedule;
}

RateSchedule RateSchedule::constant(double rate) {
  RateSchedule schedule;
  if (std::isinf(rate)) {
    schedule.infinite_rate_ = true;
  }
  schedule.segments_.push_back(RateSegment{rate, rate, kInfinity});
  return schedule;
}

double RateSchedule::total_duration_s() const {
  double total = 0;
  for (const auto& s : segments_) total += s.duration_s;
  return total;
}

double RateSchedule::rate_at(double t_s) const {
  double start = 0;
  for (const auto& s : segments_) {
    if (t_s < start + s.duration_s) {
      if (std::isinf(s.duration_s)) return s.start_rate;
      return s.start_rate + (s.end_rate - s.start_rate) * (t_s - start) / s.duration_s;
    }
    start += s.duration_s;
  }
  return 0;
}

double RateSchedule::cumulative(double t_s) const {
  double start = 0;
  double total = 0;
  for (const auto& s : segments_) {
    if (t_s < start + s.duration_s) return total + segment_cumulative(s, t_s - start);
    total += segment_cumulative(s, s.duration_s);
    start += s.duration_s;
  }
  return total;
}

std::optional<double> RateSchedule::time_at_cumulative(double count) const {
  double start = 0;
  double total = 0;
  for (const auto& s : segments_) {
    const double in_segment = segment_cumulative(s, s.duration_s);
    if (count <= total + in_segment && (s.start_rate > 0 || s.end_rate > 0)) {
      const double u = segment_inverse(s, count - total);
      return start + std::min(u, s.duration_s);
    }
    total += in_segment;
    start += s.duration_s;
  }
  return std::nullopt;
}

std::string RateSchedule::describe() const {
  if (infinite_rate_) return "inf";
  std::string out;
  for (const auto& s : segments_) {
    if (!out.empty()) out += ',';
    out += format_double(s.start_rate);
    if (s.end_rate != s.start_rate) {
      out += "->";
      out += format_double(s.end_rate);
    }
    if (!std::isinf(s.duration_s)) {
      out += '@';
      out += format_double(s.duration_s);
      out += 's';
    }
  }
  return out;
}

Result<ArrivalProcess> ArrivalProcess::create(const ArrivalConfig& config) {
  if (!(config.burstiness > 0)) {
    return Error::invalid("--burstiness", "must be > 0, got " + format_double(config.burstiness));
  }
  if (config.max_requests && *config.max_requests < 0) {
    return Error::invalid("--num-prompts", "must be >= 0, got " + std::to_string(*config.max_requests));
  }
  if (!config.ramp_up_strategy.empty()) {
    if (config.ramp_up_strategy != "linear" && config.ramp_up_strategy != "exponential") {
      return Error::invalid("--ramp-up-strategy", "must be linear or exponential, got " + config.ramp_up_strategy);
    }
    if (!config.max_requests) return Error::invalid("--ramp-up-strategy", "needs --num-prompts");
    if (!(config.ramp_up_start_rps > 0) || !(config.ramp_up_end_rps > 0) || !std::isfinite(config.ramp_up_start_rps) ||
        !std::isfinite(config.ramp_up_end_rps)) {
      return Error::invalid("--ramp-up-start-rps", "the ramp's start and end rates must be finite and > 0, got " +
                                                       format_double(config.ramp_up_start_rps) + " and " +
                                                       format_double(config.ramp_up_end_rps));
    }
  }
  for (const auto& s : config.schedule.segments()) {
    if (s.start_rate < 0 || s.end_rate < 0) {
      return Error::invalid("--request-rate", "must be >= 0, got " + format_double(s.start_rate));
    }
  }
  return ArrivalProcess(config);
}

ArrivalProcess::ArrivalProcess(const ArrivalConfig& config) : config_(config), rng_(Rng::derived(config.seed, 1)) {
  const auto& segs = config_.schedule.segments();
  const bool constant_finite =
      !config_.schedule.infinite_rate() && segs.size() == 1 && std::isinf(segs[0].duration_s) && segs[0].start_rate > 0;
  if (config_.normalize_total_span && constant_finite && config_.max_requests && *config_.max_requests > 0 &&
      config_.ramp_up_strategy.empty()) {
    const double rate = segs[0].start_rate;
    const int64_t n = *config_.max_requests;
    precomputed_.reserve(static_cast<size_t>(n));
    double t = 0;
    for (int64_t i = 0; i < n; ++i) {
      t += gap_at_rate(rate);
      precomputed_.push_back(t);
    }
    const double target = static_cast<double>(n) / rate;
    if (precomputed_.back() > 0) {
      const double factor = target / precomputed_.back();
      for (auto& v : precomputed_) v *= factor;
    }
  }
}

double ArrivalProcess::unit_gap() {
  if (std::isinf(config_.burstiness)) return 1.0;
  return rng_.gamma(config_.burstiness, 1.0 / config_.burstiness);
}

double ArrivalProcess::gap_at_rate(double rate) { return unit_gap() / rate; }

std::optional<double> ArrivalProcess::next() {
  if (config_.max_requests && emitted_ >= *config_.max_requests) return std::nullopt;
  if (!precomputed_.empty()) return precomputed_[static_cast<size_t>(emitted_++)];
  if (!config_.ramp_up_strategy.empty()) {
    const int64_t n = *config_.max_requests;
    const double progress = static_cast<double>(emitted_) / static_cast<double>(std::max<int64_t>(n - 1, 1));
    double rate;
    if (config_.ramp_up_strategy == "linear") {
      rate = config_.ramp_up_start_rps + (config_.ramp_up_end_rps - config_.ramp_up_start_rps) * progress;
    } else {
      rate = config_.ramp_up_start_rps * std::pow(config_.ramp_up_end_rps / config_.ramp_up_start_rps, progress);
    }
    last_time_s_ += gap_at_rate(rate);
    ++emitted_;
    return last_time_s_;
  }
  if (config_.schedule.infinite_rate()) {
    ++emitted_;
    return 0.0;
  }
  operational_time_ += unit_gap();
  auto t = config_.schedule.time_at_cumulative(operational_time_);
  if (!t) return std::nullopt;
  ++emitted_;
  return *t;
}

}  // namespace aurora::loadgen
