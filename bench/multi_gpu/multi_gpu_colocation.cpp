// aurora-multi-gpu-bench, sections 3 and 4: two colocated models against the same models served
// exclusively, with the simulator's predictions and the timeline SVG; emulated heterogeneity fed to
// the heterogeneous planner. See multi_gpu_bench.cpp for what is measured.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <latch>
#include <memory>
#include <span>
#include <sstream>
#include <thread>

#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/scheduler/simulator.hpp"
#include "bench_support.hpp"
#include "cuda_weights.hpp"
#include "expert_parallel_group.hpp"
#include "nccl_communicator.hpp"
#include "sm_partition.hpp"

using namespace aurora;
using namespace aurora::bench;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;

namespace {

constexpr int32_t kBlock = 16;
constexpr int32_t kMaxTokensPerStep = 512;

struct Shape {
  config::ModelConfig config;
  int32_t batch = 32, prompt = 64, steps = 20, warmup = 3;
  int32_t max_context() const { return (prompt + steps + warmup + 2 + kBlock - 1) / kBlock * kBlock; }
  int32_t blocks_per_seq() const { return max_context() / kBlock; }
  CudaRunnerOptions runner(int32_t ranks) const {
    CudaRunnerOptions o;
    o.max_tokens_per_step = kMaxTokensPerStep;
    o.max_seqs_per_step = std::max(batch, 1);
    o.kv_block_size = kBlock;
    o.max_context = max_context();
    o.kv_cache_tokens = int64_t{(batch + ranks - 1) / ranks} * max_context();
    return o;
  }
};

// Reference events per GPU: spans are measured from the start of the timed region.
struct References {
  std::vector<cudaStream_t> streams;
  std::vector<cudaEvent_t> events;
  explicit References(int32_t gpus) {
    for (int g = 0; g < gpus; ++g) {
      AURORA_CUDA_CHECK(cudaSetDevice(g));
      cudaStream_t s;
      cudaEvent_t e;
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      AURORA_CUDA_CHECK(cudaEventCreate(&e));
      streams.push_back(s);
      events.push_back(e);
    }
  }
  ~References() {
    for (size_t g = 0; g < events.size(); ++g) {
      cudaSetDevice(int(g));
      cudaEventDestroy(events[g]);
      cudaStreamDestroy(streams[g]);
    }
  }
  void record() {
    for (size_t g = 0; g < events.size(); ++g) {
      AURORA_CUDA_CHECK(cudaSetDevice(int(g)));
      AURORA_CUDA_CHECK(cudaEventRecord(events[g], streams[g]));
    }
  }
};

// One model served either by a plain single-GPU runner (CUDA graphs) or by an expert-parallel group.
struct Served {
  int32_t model = 0;  // index for spans
  std::vector<int> gpus;
  std::shared_ptr<const CudaWeights> weights;
  std::unique_ptr<CudaModelRunner> plain;
  ExpertParallelGroup* group = nullptr;  // not owned
  int32_t group_model = 0;
  std::unique_ptr<SequenceSet> seqs;
  std::vector<int32_t> tokens;
  StepResult last;

  void spans_into(std::vector<Span>& out, const References& refs) const {
    if (plain) {
      for (const auto& s : plain->collect_timeline(refs.events[size_t(gpus[0])]))
        out.push_back(Span{gpus[0], model, s});
      return;
    }
    for (size_t r = 0; r < gpus.size(); ++r) {
      for (const auto& s : group->runner(group_model, int32_t(r)).collect_timeline(refs.events[size_t(gpus[r])])) {
        out.push_back(Span{gpus[r], model, s});
      }
    }
  }
};

// Runs the prefill steps and `warmup` decode steps of every model (alone, in order).
void prefill_and_warm(std::vector<Served*> models, int32_t warmup, bool together, ExpertParallelGroup* group) {
  auto run_alone = [](Served& m, const StepBatch& b) {
    m.tokens.assign(size_t(b.num_logits_rows), -1);
    if (m.plain) {
      m.plain->execute(b, m.seqs->rows().data(), m.tokens.data());
    } else {
      std::vector<GroupStep> steps(size_t(m.group->num_models()));
      steps[size_t(m.group_model)] = GroupStep{&b, m.seqs->rows().data(), m.tokens.data()};
      m.group->execute(steps);
    }
    m.seqs->accept(b, m.tokens);
  };
  for (Served* m : models) {
    for (const StepBatch& b : m->seqs->prefill_batches(kMaxTokensPerStep)) run_alone(*m, b);
  }
  for (int32_t w = 0; w < warmup; ++w) {
    if (together) {
      std::vector<GroupStep> steps(models.size());
      std::vector<const StepBatch*> batches;
      for (size_t m = 0; m < models.size(); ++m) {
        const StepBatch& b = models[m]->seqs->decode_batch();
        models[m]->tokens.assign(size_t(b.num_logits_rows), -1);
        steps[m] = GroupStep{&b, models[m]->seqs->rows().data(), models[m]->tokens.data()};
        batches.push_back(&b);
      }
      group->execute(steps);
      for (size_t m = 0; m < models.size(); ++m) models[m]->seqs->accept(*batches[m], models[m]->tokens);
    } else {
      for (Served* m : models) run_alone(*m, m->seqs->decode_batch());
    }
  }
}

struct ModeResult {
  std::string name;
  int32_t gpus_per_model = 0;
  double wall_s = 0, tokens_per_s = 0, step_ms = 0, util = 0;
  std::vector<Span> last_spans;  // the last step (or step pair), ms from the timed region's start
};

std::vector<Span> shifted(std::vector<Span> spans) {
  float t0 = 1e30f;
  for (const Span& s : spans) t0 = std::min(t0, s.s.start_ms);
  for (Span& s : spans) {
    s.s.start_ms -= t0;
    s.s.end_ms -= t0;
  }
  return spans;
}

EpGroupOptions group_options(const Shape& shape, std::vector<int> gpus, double link_gbps, double latency_s) {
  EpGroupOptions o;
  o.devices = std::move(gpus);
  o.runner = shape.runner(int32_t(o.devices.size()));
  o.link_gbps = link_gbps;
  o.phase_latency_s = latency_s;
  o.timeline = true;
  return o;
}

}  // namespace

std::string colocation_section(const config::ModelConfig& c, const std::vector<int>& devices, int32_t batch,
                               int32_t prompt, int32_t steps, int32_t warmup, double link_gbps, double latency_s,
                               double bytes_per_s, const std::string& out_dir, std::ostringstream& json) {
  const int32_t n = int32_t(devices.size());
  Shape shape{c, batch, prompt, steps, warmup};
  const std::vector<std::string> names{"A", "B"};
  const uint64_t seeds[2] = {1, 2};
  std::vector<ModeResult> modes;
  References refs(n);
  std::vector<StepResult> exclusive_last(2);
  std::vector<Span> exclusive_spans;
  std::vector<ExpertPlacement> exclusive_placements, colocated_placements;

  // (i) Each model alone on its own half of the GPUs (one GPU each on a pair: the plain runner).
  {
    const int32_t per_model = n / 2;
    std::vector<std::unique_ptr<ExpertParallelGroup>> groups;
    std::vector<Served> served(2);
    for (int32_t m = 0; m < 2; ++m) {
      Served& s = served[size_t(m)];
      s.model = m;
      for (int32_t g = 0; g < per_model; ++g) s.gpus.push_back(m * per_model + g);
      if (per_model == 1) {
        auto w = CudaWeights::random(c, seeds[m], s.gpus[0], names[size_t(m)]);
        if (!w) throw std::runtime_error(w.error().message);
        s.weights = *w;
        auto r = CudaModelRunner::create(s.weights, shape.runner(1));
        if (!r) throw std::runtime_error(r.error().message);
        s.plain = std::move(*r);
        s.plain->enable_timeline(true);
      } else {
        auto g = ExpertParallelGroup::create({EpGroupModel{names[size_t(m)], c, nullptr, seeds[m]}},
                                             group_options(shape, s.gpus, link_gbps, latency_s));
        if (!g) throw std::runtime_error(g.error().message);
        groups.push_back(std::move(*g));
        s.group = groups.back().get();
      }
      s.seqs = std::make_unique<SequenceSet>(batch, prompt, per_model, shape.blocks_per_seq(), c.vocab_size,
                                             100 + uint32_t(m));
    }
    for (Served& s : served) prefill_and_warm({&s}, warmup, false, nullptr);
    std::vector<Span> all, last;
    std::mutex mu;
    std::latch start(3);
    double walls[2] = {0, 0};
    std::vector<std::thread> threads;
    for (int32_t m = 0; m < 2; ++m) {
      threads.emplace_back([&, m] {
        Served& s = served[size_t(m)];
        AURORA_CUDA_CHECK(cudaSetDevice(s.gpus[0]));
        start.arrive_and_wait();
        const auto t0 = Clock::now();
        for (int32_t k = 0; k < steps; ++k) {
          const StepBatch& b = s.seqs->decode_batch();
          s.tokens.assign(size_t(b.num_logits_rows), -1);
          if (s.plain) {
            s.plain->execute(b, s.seqs->rows().data(), s.tokens.data());
          } else {
            std::vector<GroupStep> st{GroupStep{&b, s.seqs->rows().data(), s.tokens.data()}};
            s.group->execute(st);
          }
          s.seqs->accept(b, s.tokens);
          std::vector<Span> sp;
          s.spans_into(sp, refs);
          std::lock_guard lock(mu);
          all.insert(all.end(), sp.begin(), sp.end());
          if (k + 1 == steps) last.insert(last.end(), sp.begin(), sp.end());
        }
        walls[m] = seconds_since(t0);
      });
    }
    refs.record();
    start.arrive_and_wait();
    for (auto& t : threads) t.join();
    ModeResult r;
    r.name = per_model == 1 ? "(i) each model on its own GPU" : "(i) each model on its own half of the GPUs";
    r.gpus_per_model = per_model;
    r.wall_s = std::max(walls[0], walls[1]);
    r.tokens_per_s = 2.0 * batch * steps / r.wall_s;
    r.step_ms = r.wall_s / steps * 1e3;
    r.util = utilisation(all, n, r.wall_s * 1e3);
    r.last_spans = shifted(last);
    modes.push_back(std::move(r));
  }

  // (ii) Both models expert-parallel over all GPUs, exclusive: one step of A, then one of B.
  {
    std::vector<std::unique_ptr<ExpertParallelGroup>> groups;
    std::vector<Served> served(2);
    for (int32_t m = 0; m < 2; ++m) {
      auto g = ExpertParallelGroup::create({EpGroupModel{names[size_t(m)], c, nullptr, seeds[m]}},
                                           group_options(shape, devices, link_gbps, latency_s));
      if (!g) throw std::runtime_error(g.error().message);
      groups.push_back(std::move(*g));
      Served& s = served[size_t(m)];
      s.model = m;
      s.gpus = devices;
      s.group = groups.back().get();
      s.seqs = std::make_unique<SequenceSet>(batch, prompt, n, shape.blocks_per_seq(), c.vocab_size, 100 + uint32_t(m));
      exclusive_placements.push_back(s.group->placement(0));
    }
    for (Served& s : served) prefill_and_warm({&s}, warmup, false, nullptr);
    std::vector<Span> all, last;
    refs.record();
    const auto t0 = Clock::now();
    for (int32_t k = 0; k < steps; ++k) {
      std::vector<Span> pair;
      for (Served& s : served) {
        const StepBatch& b = s.seqs->decode_batch();
        s.tokens.assign(size_t(b.num_logits_rows), -1);
        std::vector<GroupStep> st{GroupStep{&b, s.seqs->rows().data(), s.tokens.data()}};
        const StepResult* res = s.group->execute(st)[0];
        s.seqs->accept(b, s.tokens);
        s.spans_into(pair, refs);
        if (k + 1 == steps) exclusive_last[size_t(s.model)] = *res;
      }
      all.insert(all.end(), pair.begin(), pair.end());
      if (k + 1 == steps) last = pair;
    }
    ModeResult r;
    r.name = "(ii) exclusive: both expert-parallel over all GPUs, in turn";
    r.gpus_per_model = n;
    r.wall_s = seconds_since(t0);
    r.tokens_per_s = 2.0 * batch * steps / r.wall_s;
    r.step_ms = r.wall_s / steps * 1e3;
    r.util = utilisation(all, n, r.wall_s * 1e3);
    r.last_spans = shifted(last);
    exclusive_spans = last;
    modes.push_back(std::move(r));
  }

  // (iii) Both colocated on all GPUs, experts placed together, staggered compute turns.
  {
    auto g =
        ExpertParallelGroup::create({EpGroupModel{"A", c, nullptr, seeds[0]}, EpGroupModel{"B", c, nullptr, seeds[1]}},
                                    group_options(shape, devices, link_gbps, latency_s));
    if (!g) throw std::runtime_error(g.error().message);
    ExpertParallelGroup& group = **g;
    std::vector<Served> served(2);
    for (int32_t m = 0; m < 2; ++m) {
      Served& s = served[size_t(m)];
      s.model = m;
      s.gpus = devices;
      s.group = &group;
      s.group_model = m;
      s.seqs = std::make_unique<SequenceSet>(batch, prompt, n, shape.blocks_per_seq(), c.vocab_size, 100 + uint32_t(m));
      colocated_placements.push_back(group.placement(m));
    }
    prefill_and_warm({&served[0], &served[1]}, warmup, true, &group);
    std::vector<Span> all, last;
    refs.record();
    const auto t0 = Clock::now();
    for (int32_t k = 0; k < steps; ++k) {
      std::vector<GroupStep> st(2);
      std::vector<const StepBatch*> batches;
      for (Served& s : served) {
        const StepBatch& b = s.seqs->decode_batch();
        s.tokens.assign(size_t(b.num_logits_rows), -1);
        st[size_t(s.model)] = GroupStep{&b, s.seqs->rows().data(), s.tokens.data()};
        batches.push_back(&b);
      }
      group.execute(st);
      std::vector<Span> sp;
      for (Served& s : served) {
        s.seqs->accept(*batches[size_t(s.model)], s.tokens);
        s.spans_into(sp, refs);
      }
      all.insert(all.end(), sp.begin(), sp.end());
      if (k + 1 == steps) last = sp;
    }
    ModeResult r;
    r.name = "(iii) colocated: both on all GPUs, staggered";
    r.gpus_per_model = n;
    r.wall_s = seconds_since(t0);
    r.tokens_per_s = 2.0 * batch * steps / r.wall_s;
    r.step_ms = r.wall_s / steps * 1e3;
    r.util = utilisation(all, n, r.wall_s * 1e3);
    r.last_spans = shifted(last);
    modes.push_back(std::move(r));
  }

  // The simulator, fed with the exclusive run's measured per-layer times and routing.
  std::vector<sched::ModelStats> stats;
  for (int32_t m = 0; m < 2; ++m) {
    stats.push_back(
        model_stats_from_step(c, exclusive_spans, m, exclusive_last[size_t(m)], n, exclusive_placements[size_t(m)]));
  }
  sched::Deployment dep_ex, dep_co;
  for (int32_t m = 0; m < 2; ++m) {
    dep_ex.models.push_back(deployment_of(exclusive_placements[size_t(m)]));
    dep_co.models.push_back(deployment_of(colocated_placements[size_t(m)]));
  }
  const sched::Cluster cluster = sched::Cluster::homogeneous(n, link_gbps);
  const int64_t typical = int64_t{batch} * c.num_experts_per_tok * c.hidden_size * 2 / n;
  const double insitu =
      measured_exchange_overhead_s(exclusive_spans, bytes_per_s > 0 ? bytes_per_s : link_gbps * 1e9 / 8, typical);
  struct Pred {
    double ex_s, co_s, co_util;
  };
  auto predict = [&](double latency) {
    sched::CommModel comm;
    comm.kind = sched::CommModel::Kind::kPlanned;
    comm.order.phase_latency_s = latency;
    const auto ex = sched::simulate(stats, dep_ex, cluster, sched::DeploymentMode::kExclusive, comm);
    const auto co = sched::simulate(stats, dep_co, cluster, sched::DeploymentMode::kColocated, comm);
    return Pred{ex.inference_time_s, co.inference_time_s, co.gpu_utilization};
  };
  const Pred bench_pred = predict(latency_s), insitu_pred = predict(insitu);

  std::ostringstream o;
  o << "\n### Colocation: two " << c.model_type << "-shaped models (random weights, " << c.num_layers << " layers, "
    << c.num_experts << " experts, top-" << c.num_experts_per_tok << "), decode batch " << batch
    << " per model, context " << prompt << "+, " << steps << " timed steps\n\n"
    << "| setup | GPUs per model | tokens/s (both) | step ms | GPU util | sim step ms (a2a-bench phase cost) | err | "
       "sim step ms (in-situ exchange cost) | err |\n|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < modes.size(); ++i) {
    const ModeResult& r = modes[i];
    o << "| " << r.name << " | " << r.gpus_per_model << " | " << fmt(r.tokens_per_s, 0) << " | " << fmt(r.step_ms, 2)
      << " | " << fmt(100 * r.util, 1) << "% | ";
    if (i == 1) {
      o << fmt(bench_pred.ex_s * 1e3, 2) << " | " << pct(bench_pred.ex_s * 1e3, r.step_ms) << " | "
        << fmt(insitu_pred.ex_s * 1e3, 2) << " | " << pct(insitu_pred.ex_s * 1e3, r.step_ms) << " |\n";
    } else if (i == 2) {
      o << fmt(bench_pred.co_s * 1e3, 2) << " | " << pct(bench_pred.co_s * 1e3, r.step_ms) << " | "
        << fmt(insitu_pred.co_s * 1e3, 2) << " | " << pct(insitu_pred.co_s * 1e3, r.step_ms) << " |\n";
    } else {
      o << "- | - | - | - |\n";
    }
  }
  const ModeResult &own = modes[0], &ex = modes[1], &co = modes[2];
  o << "\ncolocated / exclusive (ii): tokens/s x" << fmt(co.tokens_per_s / ex.tokens_per_s, 2) << ", GPU utilisation x"
    << fmt(co.util / std::max(1e-9, ex.util), 2)
    << " (the paper: 1.57-1.72x utilisation, simulated); the simulator predicts x"
    << fmt(bench_pred.ex_s / std::max(1e-12, bench_pred.co_s), 2) << " in throughput, utilisation "
    << fmt(100 * bench_pred.co_util, 1) << "% colocated\n"
    << "colocated / own GPUs (i): tokens/s x" << fmt(co.tokens_per_s / own.tokens_per_s, 2) << ", GPU utilisation x"
    << fmt(co.util / std::max(1e-9, own.util), 2) << "\n"
    << "in-situ exchange cost (median exchange span minus bytes / bandwidth, exclusive run): " << fmt(insitu * 1e6)
    << " us\n";
  write_timeline_svg(out_dir + "/timeline.svg",
                     {{"exclusive (ii): model A's step, then model B's (last timed pair)", ex.last_spans},
                      {"colocated (iii): both models' steps together, staggered (last timed step)", co.last_spans}},
                     n, names);
  o << "timeline: " << out_dir << "/timeline.svg\n";
  json << "\"colocation\": [";
  for (size_t i = 0; i < modes.size(); ++i) {
    json << (i ? "," : "") << "{\"setup\":\"" << modes[i].name << "\",\"tokens_per_s\":" << modes[i].tokens_per_s
         << ",\"step_ms\":" << modes[i].step_ms << ",\"util\":" << modes[i].util << "}";
  }
  json << "],\"sim\":{\"exclusive_s\":" << bench_pred.ex_s << ",\"colocated_s\":" << bench_pred.co_s
       << ",\"exclusive_insitu_s\":" << insitu_pred.ex_s << ",\"colocated_insitu_s\":" << insitu_pred.co_s
       << ",\"colocated_util\":" << bench_pred.co_util << ",\"insitu_overhead_s\":" << insitu << "},\n";
  return o.str();
}

std::string hetero_section(const config::ModelConfig& c, const std::vector<int>& devices, int32_t batch, int32_t prompt,
                           int32_t steps, int32_t warmup, int32_t slow_sms, int32_t slow_ctas, int32_t reps,
                           std::ostringstream& json) {
  (void)reps;
  const int32_t n = int32_t(devices.size());
  // Two GPU classes: the upper half of the GPUs (the last one of two) is the slow class.
  const int32_t num_slow = std::max<int32_t>(1, n / 2), first_slow = n - num_slow;
  const int slow = devices[size_t(first_slow)];
  Shape shape{c, batch, prompt, steps, warmup};
  std::ostringstream o;
  o << "\n### Heterogeneity, emulated: two GPU classes, GPU";
  for (int32_t r = first_slow; r < n; ++r) o << (r > first_slow ? ", " : " ") << devices[size_t(r)];
  o << " limited to " << slow_sms << " SMs (green context), NCCL to " << slow_ctas << " CTA(s) per communicator\n\n";
  std::vector<std::unique_ptr<SmPartition>> partitions;
  for (int32_t r = first_slow; r < n; ++r) {
    auto partition = SmPartition::create(devices[size_t(r)], slow_sms);
    if (!partition) {
      o << "green contexts unavailable: " << partition.error().message << "\n";
      return o.str();
    }
    partitions.push_back(std::move(*partition));
  }
  const SmPartition* partition = partitions.front().get();
  // Compute speed: model A's decode step (eager, one GPU) on the whole GPU and on the partition.
  auto decode_ms = [&](cudaStream_t stream) {
    auto w = CudaWeights::random(c, 1, slow, "A");
    if (!w) throw std::runtime_error(w.error().message);
    CudaRunnerOptions ro = shape.runner(1);
    ro.use_cuda_graphs = false;
    ro.stream = stream;
    auto r = CudaModelRunner::create(*w, ro);
    if (!r) throw std::runtime_error(r.error().message);
    Served s;
    s.gpus = {slow};
    s.plain = std::move(*r);
    s.seqs = std::make_unique<SequenceSet>(batch, prompt, 1, shape.blocks_per_seq(), c.vocab_size, 7);
    prefill_and_warm({&s}, warmup, false, nullptr);
    std::vector<double> t;
    for (int32_t k = 0; k < steps; ++k) {
      const StepBatch& b = s.seqs->decode_batch();
      s.tokens.assign(size_t(b.num_logits_rows), -1);
      const auto t0 = Clock::now();
      s.plain->execute(b, s.seqs->rows().data(), s.tokens.data());
      t.push_back(seconds_since(t0) * 1e3);
      s.seqs->accept(b, s.tokens);
    }
    return median(t);
  };
  const double full_ms = decode_ms(nullptr), part_ms = decode_ms(partition->stream());
  const double speed = full_ms / part_ms;
  // Bandwidth of a CTA-limited communicator against the default (64 MiB to every peer).
  auto bandwidth = [&](int32_t max_ctas) {
    NcclOptions nccl;
    nccl.max_ctas = max_ctas;
    nccl.min_ctas = max_ctas > 0 ? 1 : 0;
    auto comm = NcclCommunicator::create_local(devices, nccl);
    if (!comm) throw std::runtime_error(comm.error().message);
    const int64_t bytes = int64_t{64} << 20;
    std::vector<void*> send(static_cast<size_t>(n)), recv(static_cast<size_t>(n));
    std::vector<cudaStream_t> streams(static_cast<size_t>(n));
    for (int32_t r = 0; r < n; ++r) {
      AURORA_CUDA_CHECK(cudaSetDevice(devices[size_t(r)]));
      AURORA_CUDA_CHECK(cudaMalloc(&send[size_t(r)], size_t(bytes) * size_t(n)));
      AURORA_CUDA_CHECK(cudaMalloc(&recv[size_t(r)], size_t(bytes) * size_t(n)));
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[size_t(r)], cudaStreamNonBlocking));
    }
    TrafficMatrix t;
    t.num_ranks = n;
    for (int32_t s = 0; s < n; ++s) {
      for (int32_t d = 0; d < n; ++d) t.bytes.push_back(s == d ? 0 : bytes);
    }
    std::vector<double> times;
    RankPool pool(n);
    for (int32_t k = 0; k < 6; ++k) {
      std::vector<double> per_rank(static_cast<size_t>(n));
      std::function<void(int32_t)> fn = [&](int32_t r) {
        AURORA_CUDA_CHECK(cudaSetDevice(devices[size_t(r)]));
        auto planner = make_all_at_once_planner();
        const ExchangePlan& plan = planner->plan(t);
        std::vector<int64_t> so(size_t(n) + 1), ro(size_t(n) + 1);
        for (int32_t x = 0; x <= n; ++x) so[size_t(x)] = ro[size_t(x)] = int64_t{x} * bytes - (x > r ? bytes : 0);
        so[size_t(r) + 1] = so[size_t(r)];
        ro[size_t(r) + 1] = ro[size_t(r)];
        (*comm)->barrier(r);
        const auto t0 = Clock::now();
        (*comm)->all_to_all_v(r,
                              AllToAllBuffers{static_cast<const std::byte*>(send[size_t(r)]), so.data(),
                                              static_cast<std::byte*>(recv[size_t(r)]), ro.data()},
                              plan, streams[size_t(r)]);
        AURORA_CUDA_CHECK(cudaStreamSynchronize(streams[size_t(r)]));
        per_rank[size_t(r)] = seconds_since(t0);
      };
      std::function<void()> on_failure = [&] { (*comm)->abort(); };
      pool.run(fn, on_failure);
      if (k >= 1) times.push_back(*std::max_element(per_rank.begin(), per_rank.end()));
    }
    for (int32_t r = 0; r < n; ++r) {
      cudaSetDevice(devices[size_t(r)]);
      cudaFree(send[size_t(r)]);
      cudaFree(recv[size_t(r)]);
      cudaStreamDestroy(streams[size_t(r)]);
    }
    return double(bytes) * (n - 1) / median(times) * 8 / 1e9;  // Gbit/s per GPU
  };
  const double gbps_full = bandwidth(0), gbps_slow = bandwidth(slow_ctas);
  o << "measured: GPU " << slow << " decode step " << fmt(full_ms, 2) << " ms on " << partition->device_sms()
    << " SMs, " << fmt(part_ms, 2) << " ms on " << partition->num_sms() << " SMs: compute speed " << fmt(speed, 2)
    << "; NCCL bandwidth per GPU " << fmt(gbps_full / 8, 0) << " GB/s default, " << fmt(gbps_slow / 8, 0)
    << " GB/s with " << slow_ctas << " CTA(s)\n\n";

  // The heterogeneous planner with the measured speeds, against the uniform placement.
  const config::ModelConfig* configs[1] = {&c};
  std::vector<RankSpec> uniform(size_t(n), RankSpec{1.0, gbps_slow}), measured = uniform;
  for (int32_t r = first_slow; r < n; ++r) measured[size_t(r)].compute_speed = speed;
  auto p_uniform = plan_model_placements({configs[0]}, {}, uniform, false);
  auto p_aware = plan_model_placements({configs[0]}, {}, measured, false);
  if (!p_uniform || !p_aware) throw std::runtime_error("placement failed");
  struct Run {
    std::string name;
    ExpertPlacement placement;
    double step_ms = 0;
    std::vector<Span> spans;
    StepResult last;
  };
  std::vector<Run> runs(2);
  runs[0].name = "uniform (identical GPUs assumed)";
  runs[0].placement = (*p_uniform)[0];
  runs[1].name = "speed-aware (measured speeds)";
  runs[1].placement = (*p_aware)[0];
  References refs(n);
  for (Run& run : runs) {
    EpGroupOptions go = group_options(shape, devices, gbps_slow, 20e-6);
    go.placements = {run.placement};
    go.nccl.max_ctas = slow_ctas;
    go.nccl.min_ctas = 1;
    go.compute_streams = {std::vector<cudaStream_t>(size_t(n), nullptr)};
    for (int32_t r = first_slow; r < n; ++r)
      go.compute_streams[0][size_t(r)] = partitions[size_t(r - first_slow)]->stream();
    auto g = ExpertParallelGroup::create({EpGroupModel{"A", c, nullptr, 1}}, go);
    if (!g) throw std::runtime_error(g.error().message);
    Served s;
    s.gpus = devices;
    s.group = g->get();
    s.seqs = std::make_unique<SequenceSet>(batch, prompt, n, shape.blocks_per_seq(), c.vocab_size, 7);
    prefill_and_warm({&s}, warmup, false, nullptr);
    refs.record();
    std::vector<double> t;
    for (int32_t k = 0; k < steps; ++k) {
      const StepBatch& b = s.seqs->decode_batch();
      s.tokens.assign(size_t(b.num_logits_rows), -1);
      std::vector<GroupStep> st{GroupStep{&b, s.seqs->rows().data(), s.tokens.data()}};
      const auto t0 = Clock::now();
      const StepResult* res = s.group->execute(st)[0];
      t.push_back(seconds_since(t0) * 1e3);
      s.seqs->accept(b, s.tokens);
      if (k + 1 == steps) {
        run.last = *res;
        s.spans_into(run.spans, refs);
      }
    }
    run.step_ms = median(t);
  }
  // Predictions: per-layer times of the uniform run on a full-speed GPU (GPU 0), the cluster with
  // the measured speeds and bandwidth.
  const sched::ModelStats stats =
      model_stats_from_step(c, runs[0].spans, 0, runs[0].last, n, runs[0].placement, devices.front());
  sched::Cluster cluster;
  for (int32_t g = 0; g < n; ++g)
    cluster.gpus.push_back(sched::GpuSpec::from_gbps(gbps_slow, g >= first_slow ? speed : 1.0));
  sched::CommModel comm;
  comm.order.phase_latency_s = 20e-6;
  o << "| placement | experts on the slow GPUs (first MoE layer) | measured step ms | simulated step ms | err "
       "|\n|---|---|---|---|---|\n";
  json << "\"hetero\":{\"speed\":" << speed << ",\"gbps_full\":" << gbps_full << ",\"gbps_slow\":" << gbps_slow
       << ",\"runs\":[";
  for (size_t i = 0; i < runs.size(); ++i) {
    sched::Deployment d;
    d.models.push_back(deployment_of(runs[i].placement));
    const double pred =
        sched::simulate({stats}, d, cluster, sched::DeploymentMode::kExclusive, comm).inference_time_s * 1e3;
    int32_t first_moe = 0;
    while (first_moe < c.num_layers && !c.layer_is_moe[size_t(first_moe)]) ++first_moe;
    size_t on_slow = 0;
    for (int32_t r = first_slow; r < n; ++r)
      on_slow += runs[i].placement.layers[size_t(first_moe)].rank_experts[size_t(r)].size();
    o << "| " << runs[i].name << " | " << on_slow << " of " << c.num_experts << " | " << fmt(runs[i].step_ms, 2)
      << " | " << fmt(pred, 2) << " | " << pct(pred, runs[i].step_ms) << " |\n";
    json << (i ? "," : "") << "{\"placement\":\"" << runs[i].name << "\",\"on_slow\":" << on_slow
         << ",\"step_ms\":" << runs[i].step_ms << ",\"pred_ms\":" << pred << "}";
  }
  json << "]},\n";
  o << "\nspeed-aware / uniform step time: x" << fmt(runs[1].step_ms / runs[0].step_ms, 2) << "\n";
  return o.str();
}
