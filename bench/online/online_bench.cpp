// aurora-online-bench (issue 8): static placement against online Aurora under a shifting traffic
// mix. Runs `aurora serve` twice (CPU ranks with the emulated cluster by default, or GPUs), drives
// each with aurora-loadgen's shifting-mix workload, polls GET /v1/aurora/plan, and prints a table:
// throughput and latency before and after the shift, how long the plan took to follow, and how
// much of a fresh optimal plan's simulated time the plan in force recovers. Writes the per-run
// data, summary.json and the timeline SVG. docs/online.md ("Benchmark"), docs/benchmarks.md.
//
//   static: --replan full until one second before the shift, then POST /v1/aurora/replan freeze:
//           the placement planned for the first mix stays (what an offline plan from yesterday's
//           traffic gives).
//   online: --replan full throughout.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "bench_process.hpp"
#include "online_report.hpp"

namespace po = boost::program_options;
namespace json = boost::json;
using namespace aurora;
using namespace aurora::bench;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  std::string aurora, loadgen, out_dir = "online_bench_out", svg;
  int port = 18650;
  int ranks = 4;
  int users = 16;
  double before_s = 20, after_s = 30;
  std::string mix_before = "prose", mix_after = "digits";
  int input_len = 64, output_len = 64;
  double range_ratio = 0.5;  // lengths drawn from [len (1 - r), len (1 + r)]: users do not march in step
  double bucket_s = 2;
  double poll_s = 0.25;
  std::string device = "cpu";
  std::string model;  // a model directory (config.json) served with random weights; empty = embedded model
  // Emulated cluster (CPU ranks) and the planner's network model.
  double link_gbps = 2, phase_latency_us = 20, expert_us = 200;
  std::string rank_speeds = "1,1,1,0.25";
  std::vector<std::string> serve_args;
  std::vector<std::string> modes{"static", "online"};
};

std::string self_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stod(item));
  return v;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", v);
  return b;
}

std::vector<std::string> serve_argv(const Config& c, int port) {
  std::vector<std::string> a{c.aurora,
                             "serve",
                             "--port",
                             std::to_string(port),
                             "--ranks",
                             std::to_string(c.ranks),
                             "--replan",
                             "full",
                             "--link-gbps",
                             fmt(c.link_gbps),
                             "--phase-latency-us",
                             fmt(c.phase_latency_us)};
  if (c.device == "cpu") {
    a.insert(a.end(), {"--device", "cpu", "--emulate-link-gbps", fmt(c.link_gbps), "--emulate-phase-latency-us",
                       fmt(c.phase_latency_us), "--emulate-expert-us", fmt(c.expert_us)});
    if (!c.rank_speeds.empty())
      a.insert(a.end(), {"--emulate-rank-speeds", c.rank_speeds, "--rank-speeds", "measured"});
  } else {
    a.insert(a.end(), {"--device", c.device});
  }
  if (!c.model.empty()) a.insert(a.end(), {"--model", c.model, "--random-weights"});
  a.insert(a.end(), c.serve_args.begin(), c.serve_args.end());
  return a;
}

double mean_balance(const json::value& plan) {
  const auto* models = plan.as_object().if_contains("models");
  if (!models || !models->is_array() || models->as_array().empty()) return 1.0;
  double sum = 0;
  int n = 0;
  for (const auto& l : models->as_array()[0].as_object().at("layers").as_array()) {
    sum += json::value_to<double>(l.as_object().at("load_balance"));
    ++n;
  }
  return n > 0 ? sum / n : 1.0;
}

Result<RunData> run_mode(const Config& c, const std::string& mode, int port) {
  RunData run;
  run.mode = mode;
  const std::string prefix = c.out_dir + "/" + mode;
  std::cerr << "[" << mode << "] starting aurora serve on port " << port << "\n";
  auto serve = ChildProcess::spawn(serve_argv(c, port), prefix + "_serve.log");
  if (!serve) return serve.error();
  std::string model;
  const auto ready_deadline = Clock::now() + std::chrono::seconds(120);
  while (model.empty()) {
    if (!serve->running())
      return Error::make(ErrorCode::kInternal, "aurora serve exited; see " + prefix + "_serve.log");
    if (Clock::now() > ready_deadline) return Error::make(ErrorCode::kUnavailable, "aurora serve not ready in 120 s");
    auto r = http_request(port, "GET", "/v1/models", "", std::chrono::milliseconds(2000));
    if (r && r->status == 200) {
      model = std::string(json::parse(r->body).as_object().at("data").as_array()[0].as_object().at("id").as_string());
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto first = http_request(port, "GET", "/v1/aurora/plan", "", std::chrono::milliseconds(5000));
  if (!first || first->status != 200) return Error::make(ErrorCode::kInternal, "GET /v1/aurora/plan failed");
  const json::value p0 = json::parse(first->body);
  if (!p0.as_object().at("enabled").as_bool()) {
    return Error::make(ErrorCode::kUnsupported, "the engine has no online planner (more than one rank needed)");
  }
  if (!p0.as_object().at("placement_supported").as_bool()) {
    std::cerr << "[" << mode << "] warning: this backend cannot move experts: statistics and advice only\n";
  }

  const double duration = c.before_s + c.after_s;
  std::vector<std::string> lg{c.loadgen,
                              "--backend",
                              "openai",
                              "--host",
                              "127.0.0.1",
                              "--port",
                              std::to_string(port),
                              "--model",
                              model,
                              "--users",
                              std::to_string(c.users),
                              "--duration",
                              fmt(duration),
                              "--dataset-name",
                              "random",
                              "--random-input-len",
                              std::to_string(c.input_len),
                              "--random-output-len",
                              std::to_string(c.output_len),
                              "--random-range-ratio",
                              fmt(c.range_ratio),
                              "--traffic-mix",
                              c.mix_before + "@" + fmt(c.before_s) + "s; " + c.mix_after,
                              "--calibrate-lengths",
                              "off",
                              "--progress",
                              "off",
                              "--scrape-metrics",
                              "off",
                              "--seed",
                              "1",
                              "--save-detailed",
                              "--save-result",
                              prefix + "_loadgen.json"};
  std::cerr << "[" << mode << "] load: " << c.users << " users, " << c.mix_before << " for " << c.before_s
            << " s, then " << c.mix_after << " for " << c.after_s << " s\n";
  auto load = ChildProcess::spawn(lg, prefix + "_loadgen.log");
  if (!load) return load.error();
  const auto t0 = Clock::now();
  auto since = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  bool frozen = false;
  double best_offset = 1e30;
  for (int64_t i = 1;; ++i) {
    std::this_thread::sleep_until(
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c.poll_s * i)));
    if (mode == "static" && !frozen && since() >= c.before_s - 1.0) {
      auto f =
          http_request(port, "POST", "/v1/aurora/replan", R"({"action":"freeze"})", std::chrono::milliseconds(5000));
      if (!f || f->status != 200) return Error::make(ErrorCode::kInternal, "POST /v1/aurora/replan freeze failed");
      frozen = true;
      std::cerr << "[static] placement frozen at t = " << since() << " s\n";
    }
    auto r = http_request(port, "GET", "/v1/aurora/plan", "", std::chrono::milliseconds(5000));
    const double t = since();
    if (r && r->status == 200) {
      const json::value v = json::parse(r->body);
      const auto& o = v.as_object();
      PlanPoll p;
      p.t_s = t;
      p.uptime_s = json::value_to<double>(o.at("uptime_s"));
      p.version = o.at("plan_version").to_number<int64_t>();
      const auto& pl = o.at("planner").as_object();
      p.switches = pl.at("switches_total").to_number<int64_t>();
      p.current_s = json::value_to<double>(pl.at("predicted_current_s"));
      p.fresh_s = json::value_to<double>(pl.at("predicted_fresh_s"));
      p.expert_load_balance = mean_balance(v);
      p.migrating = o.at("migration").as_object().at("in_progress").as_bool();
      best_offset = std::min(best_offset, t - p.uptime_s);
      if (!run.owners_by_version.count(p.version)) {
        std::vector<std::vector<int32_t>> owners;
        for (const auto& l : o.at("models").as_array()[0].as_object().at("layers").as_array()) {
          std::vector<int32_t> owner;
          for (const auto& e : l.as_object().at("owner").as_array())
            owner.push_back(static_cast<int32_t>(e.to_number<int64_t>()));
          owners.push_back(std::move(owner));
        }
        run.owners_by_version[p.version] = std::move(owners);
      }
      run.polls.push_back(p);
    }
    if (!load->running()) break;
    if (t > duration + 120) {
      load->stop(std::chrono::milliseconds(2000));
      return Error::make(ErrorCode::kInternal, "aurora-loadgen did not finish");
    }
  }
  if (load->exit_status() != 0) {
    return Error::make(ErrorCode::kInternal, "aurora-loadgen exited with " + std::to_string(load->exit_status()) +
                                                 "; see " + prefix + "_loadgen.log");
  }
  auto final_plan = http_request(port, "GET", "/v1/aurora/plan", "", std::chrono::milliseconds(5000));
  if (!final_plan || final_plan->status != 200)
    return Error::make(ErrorCode::kInternal, "final GET /v1/aurora/plan failed");
  run.final_plan = json::parse(final_plan->body);
  std::ofstream(prefix + "_plan.json") << final_plan->body;
  run.clock_offset_s = best_offset;
  serve->stop(std::chrono::milliseconds(15000));
  std::ifstream in(prefix + "_loadgen.json");
  std::stringstream ss;
  ss << in.rdbuf();
  run.loadgen = json::parse(ss.str());
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  std::string modes = "static,online";
  po::options_description opts("aurora-online-bench: static placement vs online Aurora under a shifting mix");
  opts.add_options()("help,h", "this help")("aurora", po::value(&c.aurora),
                                            "aurora binary (default: ../cli/aurora next to this program)")(
      "loadgen", po::value(&c.loadgen), "aurora-loadgen binary (default: ../loadgen/aurora-loadgen)")(
      "out", po::value(&c.out_dir), "directory for logs, per-run data, summary.json and timeline.svg")(
      "svg", po::value(&c.svg), "also write the timeline SVG here")(
      "port", po::value(&c.port), "first port (one per run)")("device", po::value(&c.device),
                                                              "cpu (emulated cluster) or cuda (GPUs: no emulation)")(
      "ranks", po::value(&c.ranks), "expert-parallel ranks")(
      "model", po::value(&c.model),
      "model directory (config.json), served with random weights (default: embedded model)")(
      "users", po::value(&c.users), "closed-loop users")("before-s", po::value(&c.before_s),
                                                         "seconds of the first mix")("after-s", po::value(&c.after_s),
                                                                                     "seconds of the second mix")(
      "mix-before", po::value(&c.mix_before), "first traffic mix (aurora-loadgen --traffic-mix syntax)")(
      "mix-after", po::value(&c.mix_after), "second traffic mix")(
      "input-len", po::value(&c.input_len), "prompt tokens")("output-len", po::value(&c.output_len),
                                                             "generated tokens")(
      "range-ratio", po::value(&c.range_ratio), "length spread (aurora-loadgen --random-range-ratio)")(
      "bucket-s", po::value(&c.bucket_s), "time bucket of the timeline")(
      "link-gbps", po::value(&c.link_gbps), "link bandwidth: emulated (cpu) and the planner's network model")(
      "phase-latency-us", po::value(&c.phase_latency_us), "per-phase latency: emulated (cpu) and the planner's")(
      "expert-us", po::value(&c.expert_us), "cpu: emulated expert time per routed row at speed 1")(
      "rank-speeds", po::value(&c.rank_speeds), "cpu: emulated relative rank speeds ('' = identical ranks)")(
      "serve-arg", po::value(&c.serve_args)->composing(), "extra argument for aurora serve (repeatable)")(
      "modes", po::value(&modes), "runs, comma-separated: static, online");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "aurora-online-bench: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  const std::string dir = self_dir();
  if (c.aurora.empty()) c.aurora = dir + "/../cli/aurora";
  if (c.loadgen.empty()) c.loadgen = dir + "/../loadgen/aurora-loadgen";
  c.modes.clear();
  std::stringstream ms(modes);
  for (std::string m; std::getline(ms, m, ',');) {
    if (m != "static" && m != "online") {
      std::cerr << "aurora-online-bench: --modes: unknown mode '" << m << "' (static, online)\n";
      return 2;
    }
    c.modes.push_back(m);
  }
  ::mkdir(c.out_dir.c_str(), 0755);

  std::vector<RunData> runs;
  int port = c.port;
  for (const auto& m : c.modes) {
    auto r = run_mode(c, m, port++);
    if (!r) {
      std::cerr << "aurora-online-bench: " << m << ": " << r.error().message << "\n";
      return 1;
    }
    runs.push_back(std::move(*r));
  }

  Timing timing;
  timing.shift_s = c.before_s;
  timing.end_s = c.before_s + c.after_s;
  timing.bucket_s = c.bucket_s;
  timing.warmup_s = std::min(5.0, c.before_s / 2);
  timing.settle_s = std::min(10.0, c.after_s / 2);
  NetworkModel net;
  net.link_gbps = c.link_gbps;
  net.phase_latency_s = c.phase_latency_us * 1e-6;
  if (c.device == "cpu" && !c.rank_speeds.empty()) net.rank_speeds = parse_list(c.rank_speeds);
  std::vector<RunSummary> summaries;
  for (const auto& r : runs) summaries.push_back(summarize_run(r, timing, net));

  std::string subtitle = c.device == "cpu"
                             ? "embedded model, " + std::to_string(c.ranks) + " CPU ranks (emulated: links " +
                                   fmt(c.link_gbps) + " Gb/s, experts " + fmt(c.expert_us) + " us/row, speeds " +
                                   (c.rank_speeds.empty() ? std::string("1") : c.rank_speeds) + "), "
                             : std::to_string(c.ranks) + " x " + c.device + ", ";
  if (!c.model.empty()) subtitle += c.model.substr(c.model.find_last_of('/') + 1) + " (random weights), ";
  subtitle +=
      std::to_string(c.users) + " users, mix " + c.mix_before + " -> " + c.mix_after + " at " + fmt(c.before_s) + " s";
  std::cout << "aurora-online-bench: " << subtitle << "\n\n" << summary_table(summaries, timing);
  for (const auto& s : summaries) {
    if (s.mode != "online") continue;
    const bool follow_ok = s.follow_s >= 0 && s.follow_s <= 10.0;
    const bool recovered_ok = s.recovery.fraction >= 0.95;
    std::cout << "\ntargets (online): plan followed within 10 s: " << (follow_ok ? "yes" : "NO")
              << "; recovered >= 95%: " << (recovered_ok ? "yes" : "NO") << "\n";
  }
  std::ofstream(c.out_dir + "/summary.json") << json::serialize(summary_json(summaries, runs, timing)) << "\n";
  const std::string svg = timeline_svg(summaries, runs, timing, subtitle);
  std::ofstream(c.out_dir + "/timeline.svg") << svg;
  if (!c.svg.empty()) std::ofstream(c.svg) << svg;
  std::cout << "\nwrote " << c.out_dir << "/summary.json, " << c.out_dir << "/timeline.svg"
            << (c.svg.empty() ? "" : ", " + c.svg) << "\n";
  return 0;
}
