#include "online_report.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <limits>

#include "aurora/scheduler/deployment_planner.hpp"
#include "aurora/scheduler/simulator.hpp"

namespace aurora::bench {

namespace json = boost::json;

namespace {

double num(const json::value& v) {
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return std::numeric_limits<double>::quiet_NaN();
}

const json::value* field(const json::value& v, const char* key) {
  if (!v.is_object()) return nullptr;
  return v.as_object().if_contains(key);
}

const json::array& array_at(const json::value& v, const char* key) {
  static const json::array kEmpty;
  const json::value* f = field(v, key);
  return f && f->is_array() ? f->as_array() : kEmpty;
}

double median_ms(std::vector<double> seconds) {
  if (seconds.empty()) return -1;
  std::sort(seconds.begin(), seconds.end());
  const double pos = 0.5 * static_cast<double>(seconds.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(seconds.size() - 1, lo + 1);
  return 1e3 * (seconds[lo] + (seconds[hi] - seconds[lo]) * (pos - static_cast<double>(lo)));
}

// One request as the load generator saw it.
struct Request {
  double start_s = 0, first_s = 0, end_s = 0;
  double tpot_s = -1;
  std::vector<double> chunk_s;  // arrival time of each content chunk
  double tokens_per_chunk = 1;
  bool ok = false;
};

std::vector<Request> requests_of(const json::value& lg) {
  std::vector<Request> out;
  const auto& starts = array_at(lg, "start_times");
  const auto& ttfts = array_at(lg, "ttfts");
  const auto& itls = array_at(lg, "itls");
  const auto& lens = array_at(lg, "output_lens");
  const auto& errors = array_at(lg, "errors");
  for (size_t i = 0; i < starts.size() && i < ttfts.size() && i < itls.size() && i < lens.size(); ++i) {
    Request r;
    r.start_s = num(starts[i]);
    r.ok = i >= errors.size() || (errors[i].is_string() && errors[i].as_string().empty());
    if (!r.ok) {
      out.push_back(r);
      continue;
    }
    r.first_s = r.start_s + num(ttfts[i]);
    double t = r.first_s;
    r.chunk_s.push_back(t);
    double gaps = 0;
    for (const auto& g : itls[i].as_array()) {
      t += num(g);
      gaps += num(g);
      r.chunk_s.push_back(t);
    }
    r.end_s = t;
    const double tokens = num(lens[i]);
    r.tokens_per_chunk = tokens > 0 ? tokens / static_cast<double>(r.chunk_s.size()) : 1.0;
    if (tokens > 1) r.tpot_s = gaps / (tokens - 1);
    out.push_back(std::move(r));
  }
  return out;
}

PhaseStats phase_stats(const std::vector<Request>& reqs, double from_s, double to_s) {
  PhaseStats p;
  if (to_s <= from_s) return p;
  double tokens = 0;
  std::vector<double> ttft, tpot, itl;
  for (const auto& r : reqs) {
    if (!r.ok) continue;
    for (size_t c = 0; c < r.chunk_s.size(); ++c) {
      if (r.chunk_s[c] < from_s || r.chunk_s[c] >= to_s) continue;
      tokens += r.tokens_per_chunk;
      if (c > 0) itl.push_back(r.chunk_s[c] - r.chunk_s[c - 1]);
    }
    if (r.start_s >= from_s && r.start_s < to_s) ttft.push_back(r.first_s - r.start_s);
    if (r.end_s >= from_s && r.end_s < to_s) {
      ++p.requests;
      if (r.tpot_s >= 0) tpot.push_back(r.tpot_s);
    }
  }
  p.output_tokens_per_s = tokens / (to_s - from_s);
  p.ttft_p50_ms = median_ms(ttft);
  p.tpot_p50_ms = median_ms(tpot);
  p.itl_p50_ms = median_ms(itl);
  return p;
}

}  // namespace

Result<Recovery> recovered_fraction(const json::value& plan, const NetworkModel& net,
                                    const std::vector<std::vector<int32_t>>* owners_override) {
  const auto& models = array_at(plan, "models");
  if (models.empty()) return Error::invalid("plan.models", "no model in the plan snapshot");
  const json::value& m = models[0];
  const int32_t n = static_cast<int32_t>(num(*field(m, "num_ranks")));
  const int32_t E = static_cast<int32_t>(num(*field(m, "num_experts")));
  const double row_bytes = num(*field(m, "row_bytes"));
  const double s_per_row = num(*field(m, "expert_seconds_per_row"));
  if (!(n > 1 && E > 0 && row_bytes > 0 && s_per_row > 0)) {
    return Error::invalid("plan.models[0]",
                          "needs num_ranks > 1, experts, row_bytes and a measured expert_seconds_per_row");
  }
  std::vector<double> speeds = net.rank_speeds;
  if (speeds.empty()) {
    for (const auto& r : array_at(m, "ranks")) speeds.push_back(num(*field(r, "compute_speed")));
  }
  if (static_cast<int32_t>(speeds.size()) != n) return Error::invalid("rank_speeds", "must list every rank");
  sched::Cluster cluster;
  for (double s : speeds) cluster.gpus.push_back(sched::GpuSpec::from_gbps(net.link_gbps, s));
  sched::ModelStats ms;
  ms.shard_home = sched::ShardHome::kOnGpu;
  ms.expert_memory_bytes = 0;
  std::vector<std::vector<int32_t>> owners;
  for (const auto& l : array_at(m, "layers")) {
    sched::LayerStats ls;
    ls.num_shards = n;
    ls.num_experts = E;
    ls.traffic.assign(static_cast<size_t>(n) * E, 0);
    const auto& re = array_at(l, "rank_expert_tokens");
    if (re.size() != ls.traffic.size())
      return Error::invalid("plan.layers.rank_expert_tokens", "must hold ranks x experts");
    for (size_t i = 0; i < re.size(); ++i) ls.traffic[i] = std::llround(num(re[i]) * row_bytes);
    ls.expert_s_per_byte = s_per_row / row_bytes;
    ms.layers.push_back(std::move(ls));
    std::vector<int32_t> owner;
    for (const auto& o : array_at(l, "owner")) owner.push_back(static_cast<int32_t>(num(o)));
    if (static_cast<int32_t>(owner.size()) != E)
      return Error::invalid("plan.layers.owner", "must hold one rank per expert");
    owners.push_back(std::move(owner));
  }
  if (ms.layers.empty()) return Error::invalid("plan.layers", "no MoE layer");
  if (owners_override) {
    if (owners_override->size() != owners.size()) return Error::invalid("owners", "must list every MoE layer");
    owners = *owners_override;
  }
  const std::vector<sched::ModelStats> all{ms};
  sched::CommModel comm;
  comm.kind = sched::CommModel::Kind::kPlanned;
  comm.order.phase_latency_s = net.phase_latency_s;
  sched::Deployment in_force;
  in_force.models.push_back(sched::Deployment::single(owners));
  sched::DeploymentOptions opts;
  opts.mode = sched::DeploymentMode::kExclusive;
  auto fresh = sched::plan_deployment(all, cluster, opts);
  if (!fresh) return fresh.error();
  Recovery r;
  r.in_force_s = sched::simulate(all, in_force, cluster, opts.mode, comm).inference_time_s;
  r.fresh_s = sched::simulate(all, *fresh, cluster, opts.mode, comm).inference_time_s;
  r.fraction = r.in_force_s > 0 ? r.fresh_s / r.in_force_s : 0.0;
  return r;
}

RunSummary summarize_run(const RunData& run, const Timing& timing, const NetworkModel& net) {
  RunSummary s;
  s.mode = run.mode;
  const std::vector<Request> reqs = requests_of(run.loadgen);
  for (const auto& r : reqs) (r.ok ? s.completed : s.failed) += 1;
  for (double t = 0; t < timing.end_s - 1e-9; t += timing.bucket_s) {
    const PhaseStats p = phase_stats(reqs, t, std::min(timing.end_s, t + timing.bucket_s));
    s.buckets.push_back(Bucket{t, p.output_tokens_per_s, p.ttft_p50_ms, p.tpot_p50_ms, p.itl_p50_ms});
  }
  s.before = phase_stats(reqs, timing.warmup_s, timing.shift_s);
  s.after = phase_stats(reqs, timing.shift_s + timing.settle_s, timing.end_s);
  std::map<int64_t, double> committed;
  for (const auto& h : array_at(run.final_plan, "history")) {
    const double t = num(*field(h, "time_s")) + run.clock_offset_s;
    committed[static_cast<int64_t>(num(*field(h, "version")))] = t;
    s.switch_times_s.push_back(t);
    if (t >= timing.shift_s && s.first_switch_after_shift_s < 0) s.first_switch_after_shift_s = t - timing.shift_s;
  }
  // Each placement seen, scored on the post-shift statistics. The plan has followed from the first
  // placement committed after the shift from which on every placement scores >= 95%.
  for (const auto& [version, owners] : run.owners_by_version) {
    RunSummary::Version v;
    v.version = version;
    if (auto it = committed.find(version); it != committed.end()) v.committed_s = it->second;
    if (auto r = recovered_fraction(run.final_plan, net, &owners)) v.recovered = r->fraction;
    s.versions.push_back(v);
  }
  for (size_t i = s.versions.size(); i-- > 0;) {
    if (s.versions[i].recovered < 0.95) break;
    if (s.versions[i].committed_s >= timing.shift_s) s.follow_s = s.versions[i].committed_s - timing.shift_s;
  }
  auto rec = recovered_fraction(run.final_plan, net);
  if (rec) {
    s.recovery = *rec;
  } else {
    s.recovery_error = rec.error().message;
  }
  return s;
}

std::string summary_table(const std::vector<RunSummary>& runs, const Timing& timing) {
  std::string out;
  char buf[512];
  std::snprintf(
      buf, sizeof(buf),
      "before the shift: [%.0f s, %.0f s); after: [%.0f s, %.0f s) (the first %.0f s after the shift left out)\n",
      timing.warmup_s, timing.shift_s, timing.shift_s + timing.settle_s, timing.end_s, timing.settle_s);
  out += buf;
  out += "| mode | phase | output tok/s | TTFT p50 ms | TPOT p50 ms | ITL p50 ms | requests |\n";
  out += "|---|---|---:|---:|---:|---:|---:|\n";
  for (const auto& r : runs) {
    for (int k = 0; k < 2; ++k) {
      const PhaseStats& p = k == 0 ? r.before : r.after;
      std::snprintf(buf, sizeof(buf), "| %s | %s | %.1f | %.1f | %.2f | %.2f | %lld |\n", r.mode.c_str(),
                    k == 0 ? "before" : "after", p.output_tokens_per_s, p.ttft_p50_ms, p.tpot_p50_ms, p.itl_p50_ms,
                    static_cast<long long>(p.requests));
      out += buf;
    }
  }
  out +=
      "\n| mode | switches after the shift | first switch s | plan followed s | T(in force) ms | T(fresh) ms | "
      "recovered | failed |\n";
  out += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : runs) {
    int after = 0;
    for (double t : r.switch_times_s) after += t >= timing.shift_s;
    auto opt = [](double v) {
      char b[32];
      if (v < 0) return std::string("-");
      std::snprintf(b, sizeof(b), "%.1f", v);
      return std::string(b);
    };
    std::snprintf(buf, sizeof(buf), "| %s | %d | %s | %s | %.2f | %.2f | %.1f%% | %lld |\n", r.mode.c_str(), after,
                  opt(r.first_switch_after_shift_s).c_str(), opt(r.follow_s).c_str(), r.recovery.in_force_s * 1e3,
                  r.recovery.fresh_s * 1e3, 100.0 * r.recovery.fraction, static_cast<long long>(r.failed));
    out += buf;
    if (!r.recovery_error.empty())
      out += "  (" + r.mode + ": recovered fraction not computed: " + r.recovery_error + ")\n";
  }
  out += "\nplacements on the post-shift statistics (T(fresh) / T(placement)):\n";
  for (const auto& r : runs) {
    out += "  " + r.mode + ":";
    for (const auto& v : r.versions) {
      if (v.committed_s < 0) {
        std::snprintf(buf, sizeof(buf), " v%lld (start) %.1f%%", static_cast<long long>(v.version), 100 * v.recovered);
      } else {
        std::snprintf(buf, sizeof(buf), " v%lld (%+.1f s) %.1f%%", static_cast<long long>(v.version),
                      v.committed_s - timing.shift_s, 100 * v.recovered);
      }
      out += buf;
    }
    out += "\n";
  }
  return out;
}

json::value summary_json(const std::vector<RunSummary>& runs, const std::vector<RunData>& data, const Timing& timing) {
  json::object o;
  o["shift_s"] = timing.shift_s;
  o["end_s"] = timing.end_s;
  o["bucket_s"] = timing.bucket_s;
  json::array arr;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunSummary& r = runs[i];
    json::object ro;
    ro["mode"] = r.mode;
    auto phase = [](const PhaseStats& p) {
      json::object po;
      po["output_tokens_per_s"] = p.output_tokens_per_s;
      po["ttft_p50_ms"] = p.ttft_p50_ms;
      po["tpot_p50_ms"] = p.tpot_p50_ms;
      po["itl_p50_ms"] = p.itl_p50_ms;
      po["requests"] = p.requests;
      return po;
    };
    ro["before"] = phase(r.before);
    ro["after"] = phase(r.after);
    json::array sw;
    for (double t : r.switch_times_s) sw.push_back(t);
    ro["switch_times_s"] = std::move(sw);
    ro["first_switch_after_shift_s"] = r.first_switch_after_shift_s;
    ro["follow_s"] = r.follow_s;
    json::array versions;
    for (const auto& v : r.versions) {
      json::object vo;
      vo["version"] = v.version;
      vo["committed_s"] = v.committed_s;
      vo["recovered_post_shift"] = v.recovered;
      versions.push_back(std::move(vo));
    }
    ro["versions"] = std::move(versions);
    ro["t_in_force_s"] = r.recovery.in_force_s;
    ro["t_fresh_s"] = r.recovery.fresh_s;
    ro["recovered_fraction"] = r.recovery.fraction;
    ro["completed"] = r.completed;
    ro["failed"] = r.failed;
    json::array buckets;
    for (const auto& b : r.buckets) {
      json::object bo;
      bo["t_s"] = b.t_s;
      bo["output_tokens_per_s"] = b.output_tokens_per_s;
      bo["ttft_p50_ms"] = b.ttft_p50_ms;
      bo["tpot_p50_ms"] = b.tpot_p50_ms;
      bo["itl_p50_ms"] = b.itl_p50_ms;
      buckets.push_back(std::move(bo));
    }
    ro["buckets"] = std::move(buckets);
    json::array polls;
    for (const auto& p : data[i].polls) {
      json::object po;
      po["t_s"] = p.t_s;
      po["plan_version"] = p.version;
      po["predicted_current_s"] = p.current_s;
      po["predicted_fresh_s"] = p.fresh_s;
      po["expert_load_balance"] = p.expert_load_balance;
      po["migrating"] = p.migrating;
      polls.push_back(std::move(po));
    }
    ro["polls"] = std::move(polls);
    arr.push_back(std::move(ro));
  }
  o["runs"] = std::move(arr);
  return o;
}

}  // namespace aurora::bench
