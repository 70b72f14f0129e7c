// aurora-multi-gpu-bench: expert parallelism over every visible GPU (issue 7), in one run:
//  1. calibration: per-phase cost (a tiny exchange) and per-GPU bandwidth (64 MiB to every peer);
//  2. all-to-all: the planner's ordered phases against NCCL's all-at-once, decode- and
//     prefill-size messages (OLMoE rows: hidden 2048 bf16, top-8, 64 experts placed contiguously),
//     uniform and Zipf(1.2) routing, each beside the planner's predicted time and the error;
//  3. colocation: two OLMoE-shaped models with random weights (seeds 1, 2): tokens/s and GPU
//     utilisation (compute time / wall time per GPU, from CUDA events) of (i) each model alone on
//     its own half of the GPUs, (ii) both expert-parallel over all GPUs, one step after the other
//     (exclusive), (iii) both colocated (staggered turns); the simulator's step time beside (ii)
//     and (iii) with the error; the stream timeline of (ii) and (iii) as an SVG;
//  4. heterogeneity, two GPU classes: the upper half of the GPUs (the last of two) limited to fewer
//     SMs (green contexts) and NCCL to fewer CTAs;
//     the measured speeds go to the heterogeneous planner; step time of model A with the uniform
//     and the speed-aware placement, each beside the simulator's prediction.
// Prints markdown tables; writes timeline.svg and results.json to --out.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/scheduler/all_to_all.hpp"
#include "aurora/scheduler/simulator.hpp"
#include "bench_support.hpp"
#include "cuda_weights.hpp"
#include "executor/rank_pool.hpp"
#include "expert_parallel_group.hpp"
#include "nccl_communicator.hpp"
#include "sm_partition.hpp"

using namespace aurora;
using namespace aurora::bench;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;

namespace {

struct Args {
  std::string config = "config/models/OLMoE-1B-7B-0924/config.json";
  std::string out = ".";
  int32_t layers = 0;  // 0 = the config's
  int32_t batch = 32, prompt = 64, steps = 20, warmup = 3, reps = 20;
  int32_t slow_sms = 32, slow_ctas = 1;
  bool hetero = true, colocation = true;
};

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (k == "--config")
      a.config = next();
    else if (k == "--out")
      a.out = next();
    else if (k == "--layers")
      a.layers = std::atoi(next());
    else if (k == "--batch")
      a.batch = std::atoi(next());
    else if (k == "--prompt")
      a.prompt = std::atoi(next());
    else if (k == "--steps")
      a.steps = std::atoi(next());
    else if (k == "--warmup")
      a.warmup = std::atoi(next());
    else if (k == "--reps")
      a.reps = std::atoi(next());
    else if (k == "--slow-sms")
      a.slow_sms = std::atoi(next());
    else if (k == "--slow-ctas")
      a.slow_ctas = std::atoi(next());
    else if (k == "--no-hetero")
      a.hetero = false;
    else if (k == "--no-colocation")
      a.colocation = false;
    else {
      std::fprintf(
          stderr,
          "usage: aurora-multi-gpu-bench [--config config.json] [--layers N] [--batch B] [--prompt P] [--steps S]\n"
          "         [--warmup W] [--reps R] [--slow-sms N] [--slow-ctas N] [--no-hetero] [--no-colocation] [--out "
          "DIR]\n");
      return false;
    }
  }
  return a.batch > 0 && a.prompt > 0 && a.steps > 0 && a.reps > 0;
}

// ---------------------------------------------------------------------------------------------
// 1-2. All-to-all rig: one NCCL rank per GPU, one thread each, buffers sized for the largest case.

struct Rig {
  int32_t n = 0;
  std::vector<int> devices;
  std::unique_ptr<NcclCommunicator> comm;
  std::unique_ptr<RankPool> pool;
  std::vector<cudaStream_t> streams;
  std::vector<cudaEvent_t> start, stop;
  std::vector<void*> send, recv;
  size_t capacity = 0;

  Rig(std::vector<int> devs, size_t bytes, const NcclOptions& nccl)
      : n(int32_t(devs.size())), devices(std::move(devs)), capacity(bytes) {
    auto c = NcclCommunicator::create_local(devices, nccl);
    if (!c) throw std::runtime_error(c.error().message);
    comm = std::move(*c);
    pool = std::make_unique<RankPool>(n);
    for (int d : devices) {
      AURORA_CUDA_CHECK(cudaSetDevice(d));
      cudaStream_t s;
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      streams.push_back(s);
      cudaEvent_t a, b;
      AURORA_CUDA_CHECK(cudaEventCreate(&a));
      AURORA_CUDA_CHECK(cudaEventCreate(&b));
      start.push_back(a);
      stop.push_back(b);
      void *x, *y;
      AURORA_CUDA_CHECK(cudaMalloc(&x, bytes));
      AURORA_CUDA_CHECK(cudaMalloc(&y, bytes));
      AURORA_CUDA_CHECK(cudaMemset(x, 1, bytes));
      send.push_back(x);
      recv.push_back(y);
    }
  }
  ~Rig() {
    pool.reset();
    for (int32_t r = 0; r < n; ++r) {
      cudaSetDevice(devices[size_t(r)]);
      cudaFree(send[size_t(r)]);
      cudaFree(recv[size_t(r)]);
      cudaEventDestroy(start[size_t(r)]);
      cudaEventDestroy(stop[size_t(r)]);
      cudaStreamDestroy(streams[size_t(r)]);
    }
  }

  struct Result {
    double seconds = 0;  // median over reps of the slowest rank
    std::string strategy;
    int32_t phases = 0;
    double estimated_s = 0;
  };

  // Exchanges `traffic` reps times (after 2 warm-ups), each after a barrier.
  Result time(const TrafficMatrix& traffic, const ExchangePlannerFactory& planners, int32_t reps) {
    std::vector<std::vector<double>> t(size_t(n), std::vector<double>(size_t(reps), 0.0));
    Result res;
    std::function<void(int32_t)> fn = [&](int32_t r) {
      AURORA_CUDA_CHECK(cudaSetDevice(devices[size_t(r)]));
      auto planner = planners();
      const ExchangePlan& plan = planner->plan(traffic);
      if (r == 0) res = Result{0, plan.strategy, int32_t(plan.phases.size()), plan.estimated_seconds};
      std::vector<int64_t> so(size_t(n) + 1, 0), ro(size_t(n) + 1, 0);
      for (int32_t o = 0; o < n; ++o) {
        so[size_t(o) + 1] = so[size_t(o)] + traffic.at(r, o);
        ro[size_t(o) + 1] = ro[size_t(o)] + traffic.at(o, r);
      }
      if (size_t(std::max(so[size_t(n)], ro[size_t(n)])) > capacity)
        throw std::runtime_error("exchange exceeds the buffers");
      const AllToAllBuffers b{static_cast<const std::byte*>(send[size_t(r)]), so.data(),
                              static_cast<std::byte*>(recv[size_t(r)]), ro.data()};
      for (int32_t k = -2; k < reps; ++k) {
        comm->barrier(r);
        AURORA_CUDA_CHECK(cudaEventRecord(start[size_t(r)], streams[size_t(r)]));
        comm->all_to_all_v(r, b, plan, streams[size_t(r)]);
        AURORA_CUDA_CHECK(cudaEventRecord(stop[size_t(r)], streams[size_t(r)]));
        AURORA_CUDA_CHECK(cudaEventSynchronize(stop[size_t(r)]));
        float ms = 0;
        AURORA_CUDA_CHECK(cudaEventElapsedTime(&ms, start[size_t(r)], stop[size_t(r)]));
        if (k >= 0) t[size_t(r)][size_t(k)] = ms * 1e-3;
      }
    };
    std::function<void()> on_failure = [&] { comm->abort(); };
    pool->run(fn, on_failure);
    std::vector<double> slowest(size_t(reps), 0.0);
    for (int32_t k = 0; k < reps; ++k) {
      for (int32_t r = 0; r < n; ++r) slowest[size_t(k)] = std::max(slowest[size_t(k)], t[size_t(r)][size_t(k)]);
    }
    res.seconds = median(slowest);
    return res;
  }
};

TrafficMatrix uniform_pairs(int32_t n, int64_t bytes) {
  TrafficMatrix t;
  t.num_ranks = n;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) t.bytes.push_back(s == d ? 0 : bytes);
  }
  return t;
}

// Dispatch traffic of `tokens` tokens per rank, top-k of E experts by popularity ~ 1/(e+1)^zipf
// (0 = uniform), experts on ranks contiguously; bf16 rows of `hidden`.
TrafficMatrix routed_traffic(int32_t n, int32_t E, int32_t K, int32_t tokens, double zipf, int32_t hidden,
                             uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> w(static_cast<size_t>(E));
  for (int32_t e = 0; e < E; ++e) w[size_t(e)] = 1.0 / std::pow(double(e + 1), zipf);
  std::discrete_distribution<int32_t> pick(w.begin(), w.end());
  TrafficMatrix t;
  t.num_ranks = n;
  t.bytes.assign(size_t(n) * n, 0);
  std::vector<int32_t> chosen;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t i = 0; i < tokens; ++i) {
      chosen.clear();
      while (int32_t(chosen.size()) < K) {
        const int32_t e = pick(rng);
        if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
      }
      for (int32_t e : chosen) t.bytes[size_t(s) * n + size_t(int64_t(e) * n / E)] += int64_t{hidden} * 2;
    }
  }
  return t;
}

double all_at_once_prediction(const TrafficMatrix& t, double link_gbps, double latency_s) {
  sched::TrafficMatrix st(t.num_ranks);
  for (int32_t s = 0; s < t.num_ranks; ++s) {
    for (int32_t d = 0; d < t.num_ranks; ++d) st(s, d) = t.at(s, d);
  }
  sched::AllToAllOptions o;
  o.phase_latency_s = latency_s;
  o.policy = sched::ChoicePolicy::kForce;
  o.forced_strategy = sched::OrderStrategy::kAllAtOnce;
  o.exact_fluid = true;
  return sched::plan_all_to_all(st, sched::Cluster::homogeneous(t.num_ranks, link_gbps), o).makespan_s;
}

struct Calibration {
  double latency_s = 20e-6;
  double link_gbps = 2400.0;
};

Calibration calibrate(Rig& rig, int32_t reps, double* bytes_per_s_out = nullptr) {
  Calibration c;
  auto once = [] { return make_all_at_once_planner(); };
  c.latency_s = rig.time(uniform_pairs(rig.n, 256), once, reps).seconds;
  const int64_t big = std::min<int64_t>(int64_t{64} << 20, int64_t(rig.capacity) / std::max(1, rig.n - 1));
  const double t = rig.time(uniform_pairs(rig.n, big), once, std::max(5, reps / 4)).seconds;
  const double bytes_per_s = double(big) * (rig.n - 1) / std::max(1e-9, t - c.latency_s);
  c.link_gbps = bytes_per_s * 8 / 1e9;
  if (bytes_per_s_out) *bytes_per_s_out = bytes_per_s;
  return c;
}

std::string a2a_section(Rig& rig, const Calibration& cal, int32_t reps, std::ostringstream& json) {
  std::ostringstream o;
  const int32_t n = rig.n, E = 64, K = 8, H = 2048;
  o << "\n### All-to-all: ordered phases vs NCCL all-at-once (" << n << " GPUs; OLMoE rows: hidden " << H
    << " bf16, top-" << K << " of " << E << " experts)\n\n"
    << "calibration: phase cost " << fmt(cal.latency_s * 1e6) << " us, bandwidth " << fmt(cal.link_gbps / 8, 0)
    << " GB/s per GPU (send = receive)\n\n"
    << "| message | routing | max port MiB | ordered: strategy, phases | measured us | predicted us | err | "
       "all-at-once measured us | predicted us | err | ordered / all-at-once | matching phases (forced): phases, "
       "measured us, predicted us, err | matching / all-at-once |\n"
    << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  json << "\"all_to_all\": [";
  bool first = true;
  for (auto [label, tokens] :
       {std::pair<const char*, int32_t>{"decode (64 tok/GPU)", 64}, {"prefill (4096 tok/GPU)", 4096}}) {
    for (double zipf : {0.0, 1.2}) {
      const TrafficMatrix t = routed_traffic(n, E, K, tokens, zipf, H, 42);
      int64_t port = 0;
      for (int32_t g = 0; g < n; ++g) {
        int64_t s = 0, r = 0;
        for (int32_t o2 = 0; o2 < n; ++o2) {
          if (o2 == g) continue;
          s += t.at(g, o2);
          r += t.at(o2, g);
        }
        port = std::max({port, s, r});
      }
      auto ordered = rig.time(
          t, [&] { return make_aurora_planner(n, cal.link_gbps, cal.latency_s); }, reps);
      auto once = rig.time(
          t, [] { return make_all_at_once_planner(); }, reps);
      const double once_pred = all_at_once_prediction(t, cal.link_gbps, cal.latency_s);
      // The paper's order itself (pad + perfect matchings), whatever the chooser predicts.
      auto matching = rig.time(
          t,
          [&] {
            auto p = make_forced_order_planner(n, "matching", cal.link_gbps, cal.latency_s);
            if (!p) throw std::runtime_error(p.error().message);
            return std::move(*p);
          },
          reps);
      o << "| " << label << " | " << (zipf > 0 ? "Zipf 1.2" : "uniform") << " | " << fmt(double(port) / (1 << 20), 2)
        << " | " << ordered.strategy << ", " << ordered.phases << " | " << fmt(ordered.seconds * 1e6) << " | "
        << fmt(ordered.estimated_s * 1e6) << " | " << pct(ordered.estimated_s, ordered.seconds) << " | "
        << fmt(once.seconds * 1e6) << " | " << fmt(once_pred * 1e6) << " | " << pct(once_pred, once.seconds) << " | "
        << fmt(ordered.seconds / std::max(1e-12, once.seconds), 2) << " | " << matching.phases << ", "
        << fmt(matching.seconds * 1e6) << ", " << fmt(matching.estimated_s * 1e6) << ", "
        << pct(matching.estimated_s, matching.seconds) << " | "
        << fmt(matching.seconds / std::max(1e-12, once.seconds), 2) << " |\n";
      json << (first ? "" : ",") << "{\"message\":\"" << label << "\",\"zipf\":" << zipf << ",\"port_bytes\":" << port
           << ",\"ordered_s\":" << ordered.seconds << ",\"ordered_pred_s\":" << ordered.estimated_s
           << ",\"strategy\":\"" << ordered.strategy << "\",\"phases\":" << ordered.phases
           << ",\"all_at_once_s\":" << once.seconds << ",\"all_at_once_pred_s\":" << once_pred
           << ",\"matching_s\":" << matching.seconds << ",\"matching_pred_s\":" << matching.estimated_s
           << ",\"matching_phases\":" << matching.phases << "}";
      first = false;
    }
  }
  json << "],\n";
  return o.str();
}

}  // namespace

// Colocation and heterogeneity sections (multi_gpu_colocation.cpp).
std::string colocation_section(const config::ModelConfig& c, const std::vector<int>& devices, int32_t batch,
                               int32_t prompt, int32_t steps, int32_t warmup, double link_gbps, double latency_s,
                               double bytes_per_s, const std::string& out_dir, std::ostringstream& json);
std::string hetero_section(const config::ModelConfig& c, const std::vector<int>& devices, int32_t batch, int32_t prompt,
                           int32_t steps, int32_t warmup, int32_t slow_sms, int32_t slow_ctas, int32_t reps,
                           std::ostringstream& json);

int main(int argc, char** argv) {
  Args args;
  if (!parse(argc, argv, args)) return 2;
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count < 2) {
    std::printf("aurora-multi-gpu-bench needs 2 or more GPUs; %d visible\n", count);
    return count < 2 ? 0 : 1;
  }
  auto cfg = config::load_model_config(args.config);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
    return 2;
  }
  config::ModelConfig c = *cfg;
  if (args.layers > 0 && args.layers < c.num_layers) {
    c.num_layers = args.layers;
    c.layer_is_moe.resize(size_t(args.layers));
    c.layer_sliding_window.resize(size_t(args.layers));
  }
  std::vector<int> devices(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) devices[size_t(i)] = i;
  std::ostringstream json, report;
  json << "{\"gpus\":" << count << ",";
  cudaDeviceProp prop{};
  AURORA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  report << "## aurora-multi-gpu-bench: " << count << " x " << prop.name << " (" << prop.multiProcessorCount
         << " SMs)\n";
  Calibration cal;
  double bytes_per_s = 0;
  try {
    // Prefill-size exchanges: 128 MiB per GPU, up to most of everyone's at a Zipf-hot receiver.
    Rig rig(devices, std::max<size_t>(size_t{256} << 20, size_t(count) * (size_t{136} << 20)), NcclOptions{});
    cal = calibrate(rig, args.reps, &bytes_per_s);
    report << a2a_section(rig, cal, args.reps, json);
  } catch (const std::exception& e) {
    report << "\nall-to-all section failed: " << e.what() << "\n";
  }
  std::printf("%s", report.str().c_str());
  std::fflush(stdout);
  if (args.colocation) {
    try {
      const std::string s = colocation_section(c, devices, args.batch, args.prompt, args.steps, args.warmup,
                                               cal.link_gbps, cal.latency_s, bytes_per_s, args.out, json);
      std::printf("%s", s.c_str());
      report << s;
    } catch (const std::exception& e) {
      std::printf("\ncolocation section failed: %s\n", e.what());
    }
    std::fflush(stdout);
  }
  if (args.hetero) {
    try {
      const std::string s = hetero_section(c, devices, args.batch, args.prompt, args.steps, args.warmup, args.slow_sms,
                                           args.slow_ctas, args.reps, json);
      std::printf("%s", s.c_str());
      report << s;
    } catch (const std::exception& e) {
      std::printf("\nheterogeneity section failed: %s\n", e.what());
    }
  }
  json << "\"done\":true}\n";
  std::ofstream(args.out + "/results.json") << json.str();
  std::ofstream(args.out + "/report.md") << report.str();
  return 0;
}
