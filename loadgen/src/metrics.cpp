#include "aurora/loadgen/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <sstream>

namespace aurora::loadgen {
namespace {

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string source_text(const std::map<std::string, int64_t>& counts) {
  if (counts.empty()) return "none";
  if (counts.size() == 1) return counts.begin()->first;
  std::string out = "mixed (";
  bool first = true;
  for (const auto& [name, n] : counts) {
    if (!first) out += ", ";
    first = false;
    out += name + ": " + std::to_string(n);
  }
  return out + ")";
}

double tpot_of(const RequestRecord& r) {
  if (r.output_tokens <= 1) return 0.0;
  return (r.e2el_s() - r.ttft_s()) / static_cast<double>(r.output_tokens - 1);
}

std::optional<double> median_ms(std::vector<double> values_s) {
  if (values_s.empty()) return std::nullopt;
  std::sort(values_s.begin(), values_s.end());
  return percentile_linear(values_s, 50) * 1000.0;
}

}  // namespace

const char* token_source_name(TokenSource source) {
  switch (source) {
    case TokenSource::kUsage: return "usage";
    case TokenSource::kChunks: return "chunks";
    case TokenSource::kEstimate: return "estimate";
  }
  return "?";
}

Result<SloConfig> SloConfig::parse(const std::vector<std::string>& items) {
  SloConfig slo;
  // Accept both `--goodput ttft:200 tpot:50` (vLLM's nargs="+") and one quoted string.
  std::vector<std::string> pieces;
  for (const auto& item : items) {
    std::string cur;
    for (char c : item) {
      if (c == ' ' || c == ',' || c == '\t') {
        if (!cur.empty()) pieces.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) pieces.push_back(cur);
  }
  for (const auto& piece : pieces) {
    const size_t colon = piece.find(':');
    if (colon == std::string::npos) {
      return Error::invalid("--goodput", "expected NAME:MILLISECONDS (ttft, tpot or e2el), got \"" + piece + "\"");
    }
    const std::string name = piece.substr(0, colon);
    const std::string value = piece.substr(colon + 1);
    char* end = nullptr;
    const double ms = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(ms) || ms < 0) {
      return Error::invalid("--goodput." + name, "must be a number of milliseconds >= 0, got \"" + value + "\"");
    }
    if (name == "ttft")
      slo.ttft_ms = ms;
    else if (name == "tpot")
      slo.tpot_ms = ms;
    else if (name == "e2el")
      slo.e2el_ms = ms;
    else
      return Error::invalid("--goodput", "unknown SLO \"" + name + "\" (expected ttft, tpot or e2el)");
  }
  return slo;
}

std::string SloConfig::describe() const {
  std::string out;
  auto add = [&](const char* name, const std::optional<double>& v) {
    if (!v) return;
    if (!out.empty()) out += ' ';
    out += std::string(name) + ":" + format_double(*v);
  };
  add("ttft", ttft_ms);
  add("tpot", tpot_ms);
  add("e2el", e2el_ms);
  return out;
}

double percentile_linear(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const auto hi = static_cast<size_t>(std::ceil(rank));
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

MetricStats compute_stats(std::vector<double> values_s, const std::vector<double>& percentiles) {
  MetricStats stats;
  stats.count = values_s.size();
  std::sort(values_s.begin(), values_s.end());
  if (!values_s.empty()) {
    const double n = static_cast<double>(values_s.size());
    const double mean = std::accumulate(values_s.begin(), values_s.end(), 0.0) / n;
    double sq = 0;
    for (double v : values_s) sq += (v - mean) * (v - mean);
    stats.mean_ms = mean * 1000.0;
    stats.std_ms = std::sqrt(sq / n) * 1000.0;
    stats.median_ms = percentile_linear(values_s, 50) * 1000.0;
  }
  for (double p : percentiles) stats.percentiles_ms.emplace_back(p, percentile_linear(values_s, p) * 1000.0);
  return stats;
}

Summary summarize(const std::vector<RequestRecord>& records, double duration_s, const SloConfig& slo,
                  const std::vector<double>& percentiles) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttfts, tpots, itls, e2els;
  std::map<std::string, int64_t> out_sources, in_sources;
  std::vector<double> cancelled_ttfts;
  for (const auto& r : records) {
    if (r.cancel_planned) ++s.cancel_planned;
    if (r.cancelled) {
      ++s.cancelled;
      s.cancelled_output_tokens += r.output_tokens;
      if (!r.chunk_s.empty()) cancelled_ttfts.push_back(r.ttft_s());
      continue;
    }
    if (!r.success) {
      ++s.failed;
      ++s.failures_by_reason[r.error_reason.empty() ? "unknown" : r.error_reason];
      continue;
    }
    ++s.completed;
    s.total_input_tokens += r.input_tokens;
    s.total_output_tokens += r.output_tokens;
    ++out_sources[token_source_name(r.output_source)];
    ++in_sources[r.input_from_usage ? "usage" : "estimate"];
    const double ttft = r.ttft_s();
    const double e2el = r.e2el_s();
    const double tpot = tpot_of(r);
    ttfts.push_back(ttft);
    e2els.push_back(e2el);
    if (r.output_tokens > 1) tpots.push_back(tpot);
    for (size_t i = 1; i < r.chunk_s.size(); ++i) itls.push_back(r.chunk_s[i] - r.chunk_s[i - 1]);
    if (!slo.empty()) {
      // vLLM compares in seconds: slo_ms / 1000 >= value.
      bool good = true;
      if (slo.ttft_ms) good = good && *slo.ttft_ms / 1000.0 >= ttft;
      if (slo.tpot_ms) good = good && *slo.tpot_ms / 1000.0 >= tpot;
      if (slo.e2el_ms) good = good && *slo.e2el_ms / 1000.0 >= e2el;
      if (good) ++s.good_completed;
    }
  }
  if (duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / duration_s;
    s.output_throughput = static_cast<double>(s.total_output_tokens) / duration_s;
    s.total_token_throughput = static_cast<double>(s.total_input_tokens + s.total_output_tokens) / duration_s;
    if (!slo.empty()) s.request_goodput = static_cast<double>(s.good_completed) / duration_s;
  } else if (!slo.empty()) {
    s.request_goodput = 0.0;
  }
  s.ttft = compute_stats(std::move(ttfts), percentiles);
  s.tpot = compute_stats(std::move(tpots), percentiles);
  s.itl = compute_stats(std::move(itls), percentiles);
  s.e2el = compute_stats(std::move(e2els), percentiles);
  s.cancelled_ttft = compute_stats(std::move(cancelled_ttfts), percentiles);
  s.output_tokens_source = source_text(out_sources);
  s.input_tokens_source = source_text(in_sources);

  // Peaks: the busiest 1-s bucket and the most requests in flight at once.
  for (const auto& b : per_second_series(records, duration_s)) {
    s.max_output_tokens_per_s = std::max(s.max_output_tokens_per_s, b.output_tokens);
    s.max_concurrent_requests = std::max(s.max_concurrent_requests, b.running_max);
  }
  return s;
}

std::vector<TimeBucket> per_second_series(const std::vector<RequestRecord>& records, double duration_s,
                                          double bucket_s) {
  double horizon = duration_s;
  for (const auto& r : records) horizon = std::max(horizon, r.end_s);
  const size_t n = static_cast<size_t>(std::max(1.0, std::ceil(horizon / bucket_s - 1e-9)));
  std::vector<TimeBucket> buckets(n);
  for (size_t i = 0; i < n; ++i) buckets[i].t_start_s = static_cast<double>(i) * bucket_s;
  auto bucket_of = [&](double t) {
    const double idx = std::floor(t / bucket_s);
    return static_cast<size_t>(std::clamp(idx, 0.0, static_cast<double>(n - 1)));
  };
  std::vector<std::vector<double>> ttfts(n), tpots(n), e2els(n);
  std::vector<std::pair<double, int>> events;
  events.reserve(records.size() * 2);
  for (const auto& r : records) {
    ++buckets[bucket_of(r.start_s)].started;
    events.emplace_back(r.start_s, +1);
    events.emplace_back(r.end_s, -1);
    // Time-weighted running count: spread [start, end) over the buckets it covers.
    for (double t = r.start_s; t < r.end_s;) {
      const size_t b = bucket_of(t);
      const double bucket_end = static_cast<double>(b + 1) * bucket_s;
      const double until = (b + 1 == n) ? r.end_s : std::min(r.end_s, bucket_end);
      buckets[b].running_mean += (until - t) / bucket_s;
      if (until <= t) break;
      t = until;
    }
    if (r.cancelled) {
      ++buckets[bucket_of(r.end_s)].cancelled;
      continue;
    }
    if (!r.success) {
      ++buckets[bucket_of(r.end_s)].failed;
      continue;
    }
    ++buckets[bucket_of(r.end_s)].completed;
    if (!r.chunk_s.empty()) {
      ttfts[bucket_of(r.chunk_s.front())].push_back(r.ttft_s());
      const double per_chunk = static_cast<double>(r.output_tokens) / static_cast<double>(r.chunk_s.size());
      for (double t : r.chunk_s) buckets[bucket_of(t)].output_tokens += per_chunk;
    } else if (r.output_tokens > 0) {
      buckets[bucket_of(r.end_s)].output_tokens += static_cast<double>(r.output_tokens);
    }
    if (r.output_tokens > 1) tpots[bucket_of(r.end_s)].push_back(tpot_of(r));
    e2els[bucket_of(r.end_s)].push_back(r.e2el_s());
  }
  // Sweep for the peak in flight; at equal times, finishes go first.
  std::sort(events.begin(), events.end());
  int64_t running = 0;
  size_t next_bucket = 0;
  for (const auto& [t, delta] : events) {
    const size_t b = bucket_of(t);
    while (next_bucket <= b && next_bucket < n) {  // the count carried into each bucket
      buckets[next_bucket].running_max = std::max(buckets[next_bucket].running_max, running);
      ++next_bucket;
    }
    running += delta;
    buckets[b].running_max = std::max(buckets[b].running_max, running);
  }
  for (size_t i = 0; i < n; ++i) {
    buckets[i].ttft_p50_ms = median_ms(std::move(ttfts[i]));
    buckets[i].tpot_p50_ms = median_ms(std::move(tpots[i]));
    buckets[i].e2el_p50_ms = median_ms(std::move(e2els[i]));
  }
  return buckets;
}

std::string percentile_key(double p) {
  std::string key = "p";
  key += p == std::floor(p) ? std::to_string(static_cast<int64_t>(p)) : format_double(p);
  return key;
}

}  // namespace aurora::loadgen
