// aurora-gpu-bench: one MoE config, random bf16 weights generated on the GPU, the CUDA runner.
//   prefill: one sequence of --prompt tokens in one step (median of --prefill-reps after a warm-up)
//   decode:  --batches sequences with --prompt tokens of context each, one token per step through
//            the decode CUDA graphs, greedy sampling on the GPU; ms/step is host wall time per
//            execute() (inputs up, graph, tokens down), median over --steps after --warmup.
//   roofline: bytes of weights each decode step must read (attention and dense weights, the
//            experts its tokens selected, the LM head) / the device-to-device copy bandwidth
//            measured first in this process (bytes read + written).
//   --profile: one more eager prefill and decode step each, with the time of every stage.
//   --trace: the kernels of the timed decode steps through CUPTI (graph replays included): per
//            kernel its time per step, and the step's idle gaps (kernel_trace.hpp).
//   --max-context N: size the runner for contexts of N tokens, as a server does (16384), instead of
//            just what the run needs (attention grids and buffers scale with it).
// Prints a table and appends JSON lines to --json.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "aurora/config/model_config.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/elementwise.hpp"
#include "cuda_runner.hpp"
#include "cuda_weights.hpp"
#include "kernel_trace.hpp"
#include "kv/block_allocator.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string config, name, json;
  int32_t prompt = 512, steps = 20, warmup = 3, prefill_reps = 3;
  int32_t max_context = 0;  // 0: just what the run needs; a server's is 16384
  std::vector<int32_t> batches = {1, 16, 64};
  uint64_t seed = 1;
  bool profile = false;
  bool trace = false;
  bool graphs = true;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Device-to-device copy bandwidth, counting bytes read plus bytes written (median of 10 copies).
double copy_bandwidth_gbs() {
  const size_t bytes = size_t{4} << 30;
  void *a = nullptr, *b = nullptr;
  AURORA_CUDA_CHECK(cudaMalloc(&a, bytes));
  AURORA_CUDA_CHECK(cudaMalloc(&b, bytes));
  kernels::cuda::launch_random_fill(a, kernels::cuda::DType::kF32, int64_t(bytes / 4), 7, 1.0f, 0.0f, nullptr);
  cudaEvent_t e0, e1;
  AURORA_CUDA_CHECK(cudaEventCreate(&e0));
  AURORA_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    AURORA_CUDA_CHECK(cudaEventRecord(e0));
    AURORA_CUDA_CHECK(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice));
    AURORA_CUDA_CHECK(cudaEventRecord(e1));
    AURORA_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    AURORA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) t.push_back(ms);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  AURORA_CUDA_CHECK(cudaFree(a));
  AURORA_CUDA_CHECK(cudaFree(b));
  return 2.0 * double(bytes) / (median(t) * 1e-3) / 1e9;
}

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (k == "--config")
      a.config = next();
    else if (k == "--name")
      a.name = next();
    else if (k == "--json")
      a.json = next();
    else if (k == "--prompt")
      a.prompt = std::stoi(next());
    else if (k == "--steps")
      a.steps = std::stoi(next());
    else if (k == "--warmup")
      a.warmup = std::stoi(next());
    else if (k == "--prefill-reps")
      a.prefill_reps = std::stoi(next());
    else if (k == "--max-context")
      a.max_context = std::stoi(next());
    else if (k == "--seed")
      a.seed = std::stoull(next());
    else if (k == "--profile")
      a.profile = true;
    else if (k == "--trace")
      a.trace = true;
    else if (k == "--no-graphs")
      a.graphs = false;
    else if (k == "--batches") {
      a.batches.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) a.batches.push_back(std::stoi(item));
    } else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      return false;
    }
  }
  if (a.config.empty()) {
    std::fprintf(
        stderr,
        "usage: aurora-gpu-bench --config DIR/config.json [--name N] [--prompt 512] [--batches 1,16,64] "
        "[--steps 20] [--warmup 3] [--prefill-reps 3] [--max-context N] [--profile] [--trace] [--json out.jsonl]\n");
    return false;
  }
  if (a.name.empty()) {
    std::string dir = a.config.substr(0, a.config.find_last_of('/'));
    a.name = dir.substr(dir.find_last_of('/') + 1);
  }
  return true;
}

// A profiled step's stages (CUDA events between them, launch gaps included), summed by name.
void print_stages(const std::string& what, const std::vector<std::pair<std::string, double>>& stages) {
  double total = 0;
  for (const auto& st : stages) total += st.second;
  std::printf("   profile, %s (%.3f ms in stages):\n", what.c_str(), total);
  for (const auto& st : stages)
    std::printf("     %-40s %8.3f ms  %5.1f%%\n", st.first.c_str(), st.second, 100 * st.second / total);
}

int run(const Args& a) {
  auto config = config::load_model_config(a.config);
  if (!config) {
    std::fprintf(stderr, "%s\n", config.error().message.c_str());
    return 2;
  }
  AURORA_CUDA_CHECK(cudaSetDevice(0));
  const double bw_gbs = copy_bandwidth_gbs();
  auto t0 = Clock::now();
  auto weights = CudaWeights::random(*config, a.seed, 0, a.name);
  if (!weights) {
    std::fprintf(stderr, "%s\n", weights.error().message.c_str());
    return 1;
  }
  const double init_ms = ms_since(t0);
  const int32_t max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  CudaRunnerOptions o;
  o.max_tokens_per_step = std::max(a.prompt, 64);
  o.max_seqs_per_step = std::max(max_batch, 1);
  o.kv_block_size = 16;
  const int32_t needed_context = (a.prompt + a.warmup + a.steps + 32 + 15) / 16 * 16;
  o.max_context = std::max(needed_context, (a.max_context + 15) / 16 * 16);
  o.kv_cache_tokens = int64_t(max_batch + a.prefill_reps + 1) * needed_context;
  o.use_cuda_graphs = a.graphs;
  auto runner = CudaModelRunner::create(*weights, o);
  if (!runner) {
    std::fprintf(stderr, "%s\n", runner.error().message.c_str());
    return 1;
  }
  CudaModelRunner& r = **runner;
  std::printf("== %s: weights %.2f GiB initialised on the GPU in %.0f ms; copy bandwidth %.0f GB/s\n", a.name.c_str(),
              double((*weights)->bytes()) / double(1 << 30), init_ms, bw_gbs);
  std::printf("   %s\n   runner sized for contexts of %d tokens\n", r.memory().to_string().c_str(), o.max_context);
  auto env_is = [](const char* name, char v) {
    const char* e = std::getenv(name);
    return e && e[0] == v;
  };
  const bool safe = env_is("AURORA_SAFE_KERNELS", '1');
  const bool legacy_attention = safe || env_is("AURORA_LEGACY_ATTENTION", '1');
  const bool cluster_never = legacy_attention || env_is("AURORA_CLUSTER_ATTENTION", '0');
  const bool cluster_always = !cluster_never && env_is("AURORA_CLUSTER_ATTENTION", '1');
  const bool folded = !cluster_never && env_is("AURORA_FUSED_PROLOGUE", '1') && !env_is("AURORA_LEGACY_PROLOGUE", '1');
  // Above the cluster kernel's tokens: the tensor-core decode kernel (head_dim 64 or 128), unless switched off.
  const bool mma_attention = !legacy_attention && !env_is("AURORA_DECODE_MMA_ATTENTION", '0');
  // At <= 4 tokens too: where each kv head has one query head (AURORA_DECODE_MMA_SMALL=1: always, 0: never).
  const bool mma_small_never = !mma_attention || env_is("AURORA_DECODE_MMA_SMALL", '0');
  const bool mma_small_always = !mma_small_never && env_is("AURORA_DECODE_MMA_SMALL", '1');
  std::printf("   kernels: programmatic dependent launch %s, bf16 attention %s, router %s, qkv prologue %s\n",
              safe || env_is("AURORA_PDL", '0') ? "off"
              : env_is("AURORA_PDL", '1')       ? "on every launch (late triggers)"
              : env_is("AURORA_PDL", '3')       ? "before small grids (late triggers)"
                                                : "before small kernels (late triggers)",
              legacy_attention   ? "legacy (direct reads)"
              : cluster_never    ? (mma_attention ? "tensor-core decode ranges" : "shared-memory partitions")
              : cluster_always   ? "clusters (16 ranges per context)"
              : mma_small_always ? "tensor-core decode ranges (64 keys at <= 4 tokens, else 512)"
              : mma_attention    ? (mma_small_never ? "clusters at <= 4 tokens, else tensor-core decode ranges"
                                                    : "tensor-core decode ranges (at <= 4 tokens: 64 keys, as clusters "
                                                      "where they fit one wave, by ticket for one query head per kv "
                                                      "head, else the cluster kernel)")
                                 : "clusters at <= 4 tokens, else shared-memory partitions",
              !safe && env_is("AURORA_CLUSTER_ROUTER", '1') ? "cluster at <= 4 tokens" : "ticket",
              env_is("AURORA_LEGACY_PROLOGUE", '1') ? "legacy kernels"
              : folded                              ? "warp per head, folded into cluster decode attention"
                                                    : "warp per head");
  const auto& c = (*weights)->config();
  BlockAllocator blocks(r.num_kv_blocks());
  std::mt19937 rng(uint32_t(a.seed));
  auto random_tokens = [&](int32_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n), 0);
    for (auto& x : t) x = int32_t(rng() % uint32_t(c.vocab_size));
    return t;
  };
  std::ofstream json;
  if (!a.json.empty()) json.open(a.json, std::ios::app);

  // Prefill.
  std::vector<double> prefill_ms;
  for (int32_t rep = 0; rep <= a.prefill_reps; ++rep) {
    std::vector<int32_t> table;
    if (!blocks.allocate(blocks_for_tokens(a.prompt, o.kv_block_size), table))
      throw std::runtime_error("KV cache full");
    auto prompt = random_tokens(a.prompt);
    StepBatch b;
    SequenceChunk ch;
    ch.tokens = prompt.data();
    ch.num_tokens = a.prompt;
    ch.block_table = table.data();
    ch.num_blocks = int32_t(table.size());
    ch.logits = LogitsMode::kLast;
    ch.logits_row = 0;
    b.chunks.push_back(ch);
    b.num_logits_rows = 1;
    kernels::SamplingRow row;
    int32_t token = 0;
    auto s = Clock::now();
    r.execute(b, &row, &token);
    const double ms = ms_since(s);
    if (rep > 0) prefill_ms.push_back(ms);  // rep 0 warms up cuBLASLt's algorithm choice
    if (a.profile && rep == a.prefill_reps) {
      // The same prompt once more, with events between stages (the cache rows are rewritten alike).
      print_stages("eager prefill of " + std::to_string(a.prompt) + " tokens", r.profile_step(b, &row, &token));
    }
    blocks.release(table);
  }
  const double prefill_tps = a.prompt / (median(prefill_ms) * 1e-3);
  std::printf("   prefill %d tokens: %.1f ms, %.0f tokens/s\n", a.prompt, median(prefill_ms), prefill_tps);
  if (json) {
    json << "{\"engine\":\"aurora\",\"model\":\"" << a.name
         << "\",\"kind\":\"prefill\",\"max_context\":" << o.max_context << ",\"prompt\":" << a.prompt
         << ",\"ms\":" << median(prefill_ms) << ",\"tokens_per_s\":" << prefill_tps << ",\"bandwidth_gbs\":" << bw_gbs
         << ",\"weights_gib\":" << double((*weights)->bytes()) / double(1 << 30) << "}\n";
  }

  // Decode.
  for (int32_t batch : a.batches) {
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
    for (auto& t : tables) {
      if (!blocks.allocate(blocks_for_tokens(needed_context, o.kv_block_size), t))
        throw std::runtime_error("KV cache full");
    }
    std::vector<int32_t> tokens = random_tokens(batch), next(static_cast<size_t>(batch));
    std::vector<kernels::SamplingRow> rows(static_cast<size_t>(batch));
    std::vector<double> step_ms;
    double bytes_sum = 0;
    int32_t graph_steps = 0;
    bool tracing = false;
    for (int32_t step = 0; step < a.warmup + a.steps; ++step) {
      if (a.trace && step == a.warmup) tracing = bench::kernel_trace_start();
      StepBatch b;
      for (int32_t i = 0; i < batch; ++i) {
        SequenceChunk ch;
        ch.tokens = tokens.data() + i;
        ch.num_tokens = 1;
        ch.start_position = a.prompt + step;  // the context of each sequence: `prompt` tokens of KV
        ch.block_table = tables[size_t(i)].data();
        ch.num_blocks = int32_t(tables[size_t(i)].size());
        ch.logits = LogitsMode::kLast;
        ch.logits_row = i;
        b.chunks.push_back(ch);
      }
      b.num_logits_rows = batch;
      auto s = Clock::now();
      r.execute(b, rows.data(), next.data());
      const double ms = ms_since(s);
      if (step >= a.warmup) {
        step_ms.push_back(ms);
        bytes_sum += double(r.last_step_weight_bytes());
        graph_steps += r.last_step_used_graph();
      }
      tokens = next;
    }
    if (tracing) bench::kernel_trace_report(a.steps);
    if (a.profile) {
      // One more step, eager, with events between stages (includes launch gaps).
      StepBatch b;
      for (int32_t i = 0; i < batch; ++i) {
        SequenceChunk ch;
        ch.tokens = tokens.data() + i;
        ch.num_tokens = 1;
        ch.start_position = a.prompt + a.warmup + a.steps;
        ch.block_table = tables[size_t(i)].data();
        ch.num_blocks = int32_t(tables[size_t(i)].size());
        ch.logits = LogitsMode::kLast;
        ch.logits_row = i;
        b.chunks.push_back(ch);
      }
      b.num_logits_rows = batch;
      print_stages("eager decode step at batch " + std::to_string(batch), r.profile_step(b, rows.data(), next.data()));
    }
    for (auto& t : tables) blocks.release(t);
    const double ms = median(step_ms);
    const double bytes = bytes_sum / double(a.steps);
    const double roofline_ms = bytes / (bw_gbs * 1e9) * 1e3;
    std::printf(
        "   decode batch %3d: %.3f ms/step (%.0f tokens/s), roofline %.3f ms (%.2f GB/step), %.2fx roofline, %d/%d "
        "graph replays\n",
        batch, ms, batch / (ms * 1e-3), roofline_ms, bytes / 1e9, ms / roofline_ms, graph_steps, a.steps);
    if (json) {
      json << "{\"engine\":\"aurora\",\"model\":\"" << a.name
           << "\",\"kind\":\"decode\",\"max_context\":" << o.max_context << ",\"batch\":" << batch << ",\"ms\":" << ms
           << ",\"roofline_ms\":" << roofline_ms << ",\"bytes\":" << bytes << ",\"bandwidth_gbs\":" << bw_gbs
           << ",\"graph_steps\":" << graph_steps << ",\"steps\":" << a.steps << "}\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) return 2;
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aurora-gpu-bench: %s\n", e.what());
    return 1;
  }
}
