// The CUDA runner (bf16 weights and KV cache, float32 accumulation) against the float32 CPU
// backend and the Hugging Face transformers fixtures: prompt logits (one prefill chunk, chunked
// prefill, the cuBLASLt and the grouped-GEMV paths), batched decode through the CUDA graphs, and
// greedy generation.
//
// bf16 tolerance: per token, max |gpu - ref| / max |ref| over the vocabulary. bf16 rounds weights
// and GEMM inputs to 8 bits of mantissa, so a token's error is ~1e-2; a token whose router sees a
// near tie may pick another expert than float32 does, so the check bounds the 90th percentile
// tightly and the worst token loosely, and prints both.
// Greedy tokens: bf16 can legitimately flip a float32 greedy choice whose top-2 margin is below the
// bf16 error, so free-running GPU generation must equal the reference up to the first step whose
// reference margin is below kMarginFloor (logit units); the test prints how many steps that is,
// and requires the whole sequence where every margin is above the floor.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "aurora/config/json.hpp"
#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/cuda/launch.hpp"
#include "cuda_runner.hpp"
#include "cuda_weights.hpp"
#include "executor_harness.hpp"
#include "gpu_test_support.hpp"
#include "model/model_builder.hpp"
#include "test_models.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;

namespace {

constexpr double kP90Tol = 2.5e-2;
constexpr double kMaxTol = 0.25;
constexpr float kMarginFloor = 0.1f;

struct ErrorStats {
  double p90 = 0, max = 0;
};

// Per row: max |got - want| / max |want| (a NaN counts as a huge error).
void append_row_errors(const std::vector<float>& got, const std::vector<float>& want, int32_t vocab,
                       std::vector<double>& errs) {
  REQUIRE(got.size() == want.size());
  for (size_t r = 0; r * size_t(vocab) < want.size(); ++r) {
    double worst = 0, scale = 1e-30;
    for (int32_t i = 0; i < vocab; ++i) {
      const float g = got[r * size_t(vocab) + size_t(i)], w = want[r * size_t(vocab) + size_t(i)];
      worst = std::max(worst, std::isnan(g) ? 1e30 : std::fabs(double(g) - double(w)));
      scale = std::max(scale, std::fabs(double(w)));
    }
    errs.push_back(worst / scale);
  }
}

ErrorStats summarize(std::vector<double> errs) {
  std::sort(errs.begin(), errs.end());
  ErrorStats s;
  s.max = errs.back();
  s.p90 = errs[std::min(errs.size() - 1, errs.size() * 9 / 10)];
  return s;
}

ErrorStats row_errors(const std::vector<float>& got, const std::vector<float>& want, int32_t vocab) {
  std::vector<double> errs;
  append_row_errors(got, want, vocab, errs);
  return summarize(errs);
}

struct GpuHarness {
  std::unique_ptr<CudaModelRunner> runner;
  BlockAllocator blocks{1};

  explicit GpuHarness(const Model& model, int32_t block_size = 4, int32_t fused_ffn = -1, int32_t expert_lanes = 0) {
    auto w = CudaWeights::upload(model, 0);
    REQUIRE(w.ok());
    CudaRunnerOptions o;
    o.max_tokens_per_step = 256;
    o.max_seqs_per_step = 256;  // logits rows of a whole prompt
    o.kv_block_size = block_size;
    o.max_context = 512;
    o.kv_cache_tokens = 8192;
    o.fused_ffn = fused_ffn;
    o.expert_lanes = expert_lanes;
    auto r = CudaModelRunner::create(*w, o);
    REQUIRE(r.ok());
    runner = std::move(*r);
    blocks = BlockAllocator(runner->num_kv_blocks());
  }

  int32_t vocab() const { return runner->weights().config().vocab_size; }

  std::vector<float> prompt_logits(const std::vector<int32_t>& prompt, int32_t chunk) {
    std::vector<int32_t> table;
    REQUIRE(blocks.allocate(blocks_for_tokens(int64_t(prompt.size()), runner->options().kv_block_size), table));
    std::vector<float> out;
    for (int32_t start = 0; start < int32_t(prompt.size()); start += chunk) {
      StepBatch b;
      SequenceChunk c;
      c.tokens = prompt.data() + start;
      c.num_tokens = std::min<int32_t>(chunk, int32_t(prompt.size()) - start);
      c.start_position = start;
      c.block_table = table.data();
      c.num_blocks = int32_t(table.size());
      c.logits = LogitsMode::kAllTokens;
      c.logits_row = 0;
      b.chunks.push_back(c);
      b.num_logits_rows = c.num_tokens;
      const StepResult& r = runner->execute(b);
      out.insert(out.end(), r.logits, r.logits + size_t(c.num_tokens) * size_t(vocab()));
    }
    blocks.release(table);
    return out;
  }

  // One sequence's step over tokens [computed, end) of seq, logits of its last token.
  static StepBatch last_logits_step(const std::vector<int32_t>& seq, int32_t computed, int32_t end,
                                    const std::vector<int32_t>& table) {
    StepBatch b;
    SequenceChunk c;
    c.start_position = computed;
    c.num_tokens = end - computed;
    c.tokens = seq.data() + computed;
    c.block_table = table.data();
    c.num_blocks = int32_t(table.size());
    c.logits = LogitsMode::kLast;
    c.logits_row = 0;
    b.chunks.push_back(c);
    b.num_logits_rows = 1;
    return b;
  }

  // Prefill, then the `fed` tokens one per step (the decode graphs): the logits of every step.
  std::vector<float> fed_logits(const std::vector<int32_t>& prompt, const std::vector<int32_t>& fed) {
    std::vector<int32_t> seq = prompt, table;
    seq.insert(seq.end(), fed.begin(), fed.end());
    REQUIRE(blocks.allocate(blocks_for_tokens(int64_t(seq.size()), runner->options().kv_block_size), table));
    std::vector<float> out;
    int32_t computed = 0;
    for (int32_t end = int32_t(prompt.size()); end <= int32_t(seq.size()); ++end) {
      const StepResult& r = runner->execute(last_logits_step(seq, computed, end, table));
      out.insert(out.end(), r.logits, r.logits + vocab());
      computed = end;
    }
    blocks.release(table);
    return out;
  }

  // `n` sequences (the prompt rotated by 0 .. n - 1 tokens) prefilled together, then the `fed`
  // tokens one per sequence per step (decode steps of n tokens): every step's logits.
  std::vector<float> batch_logits(const std::vector<int32_t>& prompt, const std::vector<int32_t>& fed, int32_t n) {
    std::vector<std::vector<int32_t>> seqs, tables(static_cast<size_t>(n));
    for (int32_t s = 0; s < n; ++s) {
      std::vector<int32_t> q = prompt;
      std::rotate(q.begin(), q.begin() + s, q.end());
      q.insert(q.end(), fed.begin(), fed.end());
      seqs.push_back(q);
      REQUIRE(
          blocks.allocate(blocks_for_tokens(int64_t(q.size()), runner->options().kv_block_size), tables[size_t(s)]));
    }
    std::vector<float> out;
    int32_t computed = 0;
    for (int32_t end = int32_t(prompt.size()); end <= int32_t(seqs[0].size()); ++end) {
      StepBatch b;
      for (int32_t s = 0; s < n; ++s) {
        StepBatch one = last_logits_step(seqs[size_t(s)], computed, end, tables[size_t(s)]);
        one.chunks[0].logits_row = s;
        b.chunks.push_back(one.chunks[0]);
      }
      b.num_logits_rows = n;
      const StepResult& r = runner->execute(b);
      out.insert(out.end(), r.logits, r.logits + size_t(n) * size_t(vocab()));
      computed = end;
    }
    for (auto& t : tables) blocks.release(t);
    return out;
  }

  // Prefill, then one token per step with greedy sampling on the GPU (the decode-graph path).
  std::vector<int32_t> greedy(const std::vector<int32_t>& prompt, int32_t steps) {
    std::vector<int32_t> seq = prompt, table, out;
    REQUIRE(blocks.allocate(blocks_for_tokens(int64_t(prompt.size()) + steps, runner->options().kv_block_size), table));
    int32_t computed = 0;
    while (int32_t(out.size()) < steps) {
      kernels::SamplingRow row;  // temperature 0: greedy
      int32_t token = -1;
      runner->execute(last_logits_step(seq, computed, int32_t(seq.size()), table), &row, &token);
      computed = int32_t(seq.size());
      out.push_back(token);
      seq.push_back(token);
    }
    blocks.release(table);
    return out;
  }
};

// A model of `arch` with dimensions that exercise the real kernel paths (k in the hundreds, >64-token
// prefill through cuBLASLt, per-expert and grouped expert paths), weights rounded to bf16 so that
// the CPU reference and the GPU start from the same numbers.
std::shared_ptr<const Model> mid_model(config::ModelArchitecture arch, int32_t head_dim = 0) {
  auto c = runtime::test::small_config(arch);
  c.vocab_size = 500;
  c.hidden_size = 256;
  c.num_heads = 8;
  c.num_kv_heads = arch == config::ModelArchitecture::kOlmoe ? 8 : 2;
  // head_dim 64 (Mixtral, Qwen2-MoE): prefill chunks through the tensor-core attention; 40 and 32:
  // through the decode kernels.
  c.head_dim = arch == config::ModelArchitecture::kQwen3Moe ? 40 : arch == config::ModelArchitecture::kOlmoe ? 32 : 64;
  if (head_dim > 0) {
    c.head_dim = head_dim;
    // OLMoE's q/k norm spans the hidden size: num_heads x head_dim == hidden (one query head per kv head).
    if (arch == config::ModelArchitecture::kOlmoe) c.num_heads = c.num_kv_heads = c.hidden_size / head_dim;
  }
  c.moe_intermediate_size = 128;
  if (arch == config::ModelArchitecture::kQwen3Moe) {
    c.num_experts = 32;
    c.num_experts_per_tok = 4;
  }
  if (c.dense_intermediate_size) c.dense_intermediate_size = 192;
  if (c.shared_expert_intermediate_size) c.shared_expert_intermediate_size = 96;
  ModelBuilder builder(c, 99, config::architecture_name(arch));
  builder.fill_random();
  for (auto& v : builder.model().owned) {
    for (auto& x : v) x = aurora::test::round_bf16(x);
  }
  return builder.finish().value();
}

std::vector<int32_t> random_prompt(int32_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (auto& t : p) t = int32_t(rng() % uint32_t(vocab));
  return p;
}

// `num_seqs` sequences of prompt_len(s) tokens prefilled together, then `steps` decode steps of all
// of them (through the graphs after the first), fed the CPU's greedy tokens; every step's logits
// against the CPU backend's.
struct BatchedDecode {
  std::vector<double> errs;
  std::vector<float> logits;  // every step's rows, in order
  int32_t graph_steps = 0;
};
template <class PromptLen>
BatchedDecode batched_decode_vs_cpu(const std::shared_ptr<const Model>& model, GpuHarness& gpu, int32_t num_seqs,
                                    int32_t steps, const PromptLen& prompt_len) {
  const int32_t V = model->config.vocab_size;
  runtime::test::Harness cpu(model, 1, 256, 4);
  std::vector<std::vector<int32_t>> seqs, tables(static_cast<size_t>(num_seqs)),
      cpu_tables(static_cast<size_t>(num_seqs));
  for (int32_t s = 0; s < num_seqs; ++s) seqs.push_back(random_prompt(prompt_len(s), V, uint32_t(20 + s)));
  for (int32_t s = 0; s < num_seqs; ++s) {
    REQUIRE(gpu.blocks.allocate(blocks_for_tokens(int64_t(seqs[size_t(s)].size()) + steps, 4), tables[size_t(s)]));
    REQUIRE(cpu.allocators[0].allocate(blocks_for_tokens(int64_t(seqs[size_t(s)].size()) + steps, 4),
                                       cpu_tables[size_t(s)]));
  }
  std::vector<int32_t> computed(static_cast<size_t>(num_seqs), 0);
  BatchedDecode out;
  for (int32_t step = 0; step <= steps; ++step) {
    StepBatch b;
    for (int32_t s = 0; s < num_seqs; ++s) {
      SequenceChunk c;
      c.start_position = computed[size_t(s)];
      c.num_tokens = int32_t(seqs[size_t(s)].size()) - computed[size_t(s)];
      c.tokens = seqs[size_t(s)].data() + computed[size_t(s)];
      c.num_blocks = int32_t(tables[size_t(s)].size());
      c.logits = LogitsMode::kLast;
      c.logits_row = s;
      b.chunks.push_back(c);
    }
    b.num_logits_rows = num_seqs;
    StepBatch bc = b;
    for (int32_t s = 0; s < num_seqs; ++s) {
      b.chunks[size_t(s)].block_table = tables[size_t(s)].data();
      bc.chunks[size_t(s)].block_table = cpu_tables[size_t(s)].data();
    }
    const StepResult& g = gpu.runner->execute(b);
    std::vector<float> got(g.logits, g.logits + size_t(num_seqs) * V);
    out.logits.insert(out.logits.end(), got.begin(), got.end());
    out.graph_steps += gpu.runner->last_step_used_graph();
    const StepResult& r = cpu.exec->execute(bc);
    std::vector<float> want(r.logits, r.logits + size_t(num_seqs) * V);
    append_row_errors(got, want, V, out.errs);
    for (int32_t s = 0; s < num_seqs; ++s) {
      computed[size_t(s)] = int32_t(seqs[size_t(s)].size());
      seqs[size_t(s)].push_back(runtime::test::argmax(want.data() + size_t(s) * V, V));
    }
  }
  return out;
}

const config::ModelArchitecture kArchs[] = {config::ModelArchitecture::kMixtral, config::ModelArchitecture::kQwen2Moe,
                                            config::ModelArchitecture::kQwen3Moe, config::ModelArchitecture::kOlmoe};

}  // namespace

TEST_CASE("GPU prompt logits match the CPU backend (bf16 tolerance)", "[gpu][model]") {
  for (auto arch : kArchs) {
    auto model = mid_model(arch);
    INFO(model->name);
    runtime::test::Harness cpu(model, 1, 256, 4);
    GpuHarness gpu(*model);
    const int32_t V = model->config.vocab_size;
    auto prompt = random_prompt(100, V, 5);
    auto want = cpu.prompt_logits(prompt, 100);
    // One cuBLASLt prefill chunk; 30-token chunks after a cached prefix (tensor-core attention
    // tiles where head_dim allows); 7-token chunks through the GEMV path and the decode attention.
    for (int32_t chunk : {100, 30, 7}) {
      auto got = gpu.prompt_logits(prompt, chunk);
      auto e = row_errors(got, want, V);
      std::printf("%-20s chunk %3d: logits error p90 %.2e, max %.2e\n", model->name.c_str(), chunk, e.p90, e.max);
      CHECK(e.p90 < kP90Tol);
      CHECK(e.max < kMaxTol);
    }
  }
}

TEST_CASE("batched decode through the CUDA graphs matches the CPU backend", "[gpu][model]") {
  struct Restore {
    ~Restore() { kernels::cuda::set_small_decode_attention(-1); }
  } restore;
  // These steps of 3 tokens attend through the cluster kernel (small 0), by default (-1), through
  // the tensor-core kernel with clusters where they fit (1) or without (2). By default head_dim 64
  // takes the tensor-core decode kernel: its ranges as clusters where each kv head has a group of
  // query heads (Mixtral, Qwen2-MoE: 2 kv heads, clusters of 16), merged by the last block where it
  // has one (OLMoE with head_dim 64: 4 kv heads; forced clusters: 8); the copies of the cached rows
  // before the wait for the qkv prologue, o_proj launched early. Each against the CPU backend.
  struct Case {
    config::ModelArchitecture arch;
    int small;
    int32_t head_dim;  // 0: mid_model's
  };
  using A = config::ModelArchitecture;
  for (const Case& k :
       {Case{A::kMixtral, 0, 0}, Case{A::kMixtral, -1, 0}, Case{A::kMixtral, 2, 0}, Case{A::kQwen2Moe, 0, 0},
        Case{A::kQwen2Moe, -1, 0}, Case{A::kQwen3Moe, -1, 0}, Case{A::kOlmoe, -1, 0}, Case{A::kOlmoe, 0, 64},
        Case{A::kOlmoe, -1, 64}, Case{A::kOlmoe, 1, 64}}) {
    static std::map<std::pair<A, int32_t>, std::pair<std::vector<float>, std::vector<float>>> logits_by_model;
    kernels::cuda::set_small_decode_attention(k.small);
    auto model = mid_model(k.arch, k.head_dim);
    const char* how[] = {"", " (cluster attention)", " (tensor-core attention, clusters)",
                         " (tensor-core attention, no clusters)"};
    const std::string label = std::string(how[k.small + 1]) + (k.head_dim ? " (head_dim 64)" : "");
    INFO(model->name << label);
    GpuHarness gpu(*model);
    // Three sequences of different lengths decode together (bucket 4: one padded row) for 6 steps
    // (40, 85 and 130 prompt tokens: the longer two attend over more than one range of 64 keys).
    const int32_t steps = 6;
    const BatchedDecode run = batched_decode_vs_cpu(model, gpu, 3, steps, [](int32_t s) { return 40 + 45 * s; });
    const auto& errs = run.errs;
    const auto& all_got = run.logits;
    const int32_t graph_steps = run.graph_steps;
    const auto e = summarize(errs);
    std::printf("%-20s decode x3%s, %zu rows: logits error p90 %.2e, max %.2e, %d graph replays\n", model->name.c_str(),
                label.c_str(), errs.size(), e.p90, e.max, graph_steps);
    CHECK(e.p90 < kP90Tol);
    CHECK(e.max < kMaxTol);
    CHECK(graph_steps == steps - 1);  // the first decode step of a bucket runs eagerly and is captured
    // The cluster kernel gives other bits than the tensor-core kernel; the tensor-core kernel the
    // same with clusters or without (ranges of 64 keys either way at these contexts, merged in the
    // same order).
    auto& [cluster_kernel, tensor_core] = logits_by_model[{k.arch, k.head_dim}];
    if (k.small == 0) {
      cluster_kernel = all_got;
    } else {
      if (!cluster_kernel.empty()) CHECK(all_got != cluster_kernel);
      if (!tensor_core.empty()) CHECK(all_got == tensor_core);
      tensor_core = all_got;
    }
  }
}

TEST_CASE("decode steps of 20 sequences (routed experts on the tiled GEMM) match the CPU backend", "[gpu][model]") {
  // Bucket 24: the routed experts' launches take the tiled wgmma GEMM (>= 16 positions per group, or
  // >= 5 for large experts), not the GEMV of smaller steps; prompts of 4-16 tokens prefilled
  // together (the same tiled path), then 3 decode steps, the last two through the graphs.
  for (auto arch : kArchs) {
    auto model = mid_model(arch);
    INFO(model->name);
    const auto& c = model->config;
    kernels::cuda::GroupedGemvParams experts;
    experts.group_offsets = reinterpret_cast<const int32_t*>(&c);  // only its presence matters here
    experts.n = c.moe_intermediate_size;
    experts.k = c.hidden_size;
    experts.epilogue = kernels::cuda::GemvEpilogue::kSwiGluBF16;
    experts.max_positions_per_group = 24;
    REQUIRE(kernels::cuda::gemv_uses_tiled_gemm(experts));
    GpuHarness gpu(*model);
    const int32_t steps = 3;
    const BatchedDecode run = batched_decode_vs_cpu(model, gpu, 20, steps, [](int32_t s) { return 4 + (5 * s) % 13; });
    const auto e = summarize(run.errs);
    std::printf("%-20s decode x20, %zu rows: logits error p90 %.2e, max %.2e, %d graph replays\n", model->name.c_str(),
                run.errs.size(), e.p90, e.max, run.graph_steps);
    CHECK(e.p90 < kP90Tol);
    CHECK(e.max < kMaxTol);
    CHECK(run.graph_steps == steps - 1);
  }
}

TEST_CASE("decode with the fused expert FFN has the two launches' bits", "[gpu][model]") {
  // The runner's fused path (one launch for gate_up, down and the combine, counters zeroed with the
  // step's routing counts) forced on against forced off: the same greedy tokens and the same logits
  // bits at every decode step, eager and through the graphs.
  for (auto arch : kArchs) {
    auto model = mid_model(arch);
    INFO(model->name);
    const int32_t V = model->config.vocab_size;
    auto prompt = random_prompt(23, V, 7);
    auto fed = random_prompt(8, V, 8);
    GpuHarness two(*model, 4, 0), fused(*model, 4, 1);
    CHECK(fused.greedy(prompt, 12) == two.greedy(prompt, 12));
    const auto want = two.fed_logits(prompt, fed);
    const auto got = fused.fed_logits(prompt, fed);
    CHECK(fused.runner->last_step_used_graph());
    REQUIRE(got.size() == want.size());
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  }
}

namespace {
// What a runner made now (under the process's kernel switches) decodes: greedy tokens, every
// step's logits one token at a time (the decode graphs, eager first), and, with batch > 1, every
// step's logits of `batch` sequences decoded together.
struct DecodeRun {
  std::vector<int32_t> tokens;
  std::vector<float> logits, batch_logits;
  bool graphs = false;
};
DecodeRun decode_run(const Model& model, int32_t fused, uint32_t seed, int32_t batch = 1) {
  const int32_t V = model.config.vocab_size;
  const auto prompt = random_prompt(23, V, seed);
  const auto fed = random_prompt(8, V, seed + 1);
  GpuHarness h(model, 4, fused);
  DecodeRun r;
  r.tokens = h.greedy(prompt, 12);
  r.logits = h.fed_logits(prompt, fed);
  r.graphs = h.runner->last_step_used_graph();
  if (batch > 1) r.batch_logits = h.batch_logits(prompt, fed, batch);
  return r;
}
// The same tokens and the same logits bits.
void check_same_bits(const DecodeRun& got, const DecodeRun& want) {
  CHECK(got.tokens == want.tokens);
  CHECK(got.graphs);
  REQUIRE(got.logits.size() == want.logits.size());
  CHECK(std::memcmp(got.logits.data(), want.logits.data(), got.logits.size() * sizeof(float)) == 0);
  REQUIRE(got.batch_logits.size() == want.batch_logits.size());
  CHECK(std::memcmp(got.batch_logits.data(), want.batch_logits.data(), got.batch_logits.size() * sizeof(float)) == 0);
}
}  // namespace

TEST_CASE("decode with the self-routed gate_up has the bits of the router's routing", "[gpu][model]") {
  // Steps of <= 4 tokens: the experts' gate_up (unfused, or the fused FFN forced on) routing for
  // itself from the logits (kc::GroupedGemvParams::self_route, the default) against reading the
  // router's permutation: the same greedy tokens and logits bits at every decode step, eager and
  // through the graphs (each runner captures its graphs under its setting), at batch 1 and 3.
  struct Restore {
    ~Restore() { kernels::cuda::reset_gemv_self_route(); }
  } restore;
  for (auto arch : kArchs) {
    for (int32_t fused : {0, 1}) {
      auto model = mid_model(arch);
      INFO(model->name << (fused ? ", fused expert FFN" : ""));
      kernels::cuda::set_gemv_self_route(false);
      const int64_t launches0 = kernels::cuda::gemv_self_routed_launches();
      const DecodeRun want = decode_run(*model, fused, 13, 3);
      CHECK(kernels::cuda::gemv_self_routed_launches() == launches0);
      kernels::cuda::set_gemv_self_route(true);
      check_same_bits(decode_run(*model, fused, 13, 3), want);
      CHECK(kernels::cuda::gemv_self_routed_launches() > launches0);  // the decode steps ran it
    }
  }
}

TEST_CASE("decode with early launches has the bits of decode without them", "[gpu][model]") {
  // Early launches (aurora/kernels/cuda/launch.hpp) only move when blocks start: every kernel still
  // waits before it reads what its predecessor writes. All of them against none: the same greedy
  // tokens and logits bits at every decode step, eager and through the graphs (each runner captures
  // its graphs under the setting it runs with), with the fused expert FFN off and forced on.
  struct Restore {
    ~Restore() { kernels::cuda::reset_early_launches(); }
  } restore;
  for (auto arch : kArchs) {
    for (int32_t fused : {0, 1}) {
      auto model = mid_model(arch);
      INFO(model->name << (fused ? ", fused expert FFN" : ""));
      kernels::cuda::set_early_launches(0);
      const DecodeRun want = decode_run(*model, fused, 9);
      kernels::cuda::set_early_launches(kernels::cuda::kEarlyAll);
      check_same_bits(decode_run(*model, fused, 9), want);
    }
  }
}

TEST_CASE("prefill with its experts over several streams has the bits of one stream", "[gpu][model]") {
  // Prefill's per-expert cuBLASLt GEMMs (AURORA_EXPERT_CUBLASLT=1, steps of > 64 tokens) on one lane
  // against three: the same prompt logits, bit for bit, over two 100-token chunks (the second after
  // a cached prefix); and near the CPU backend (the 90th percentile: over 200 tokens, a router near
  // a tie may pick another expert than float32 does, see the top of this file).
  struct CublasLtExperts {
    CublasLtExperts() { set_expert_cublaslt(true); }
    ~CublasLtExperts() { reset_expert_cublaslt(); }
  } on;
  auto model = mid_model(config::ModelArchitecture::kMixtral);
  REQUIRE(expert_cublaslt());
  const int32_t V = model->config.vocab_size;
  const auto prompt = random_prompt(200, V, 11);
  GpuHarness one(*model, 4, -1, 1), three(*model, 4, -1, 3);
  const auto want = one.prompt_logits(prompt, 100);
  const auto got = three.prompt_logits(prompt, 100);
  REQUIRE(got.size() == want.size());
  CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  runtime::test::Harness cpu(model, 1, 256, 4);
  const auto e = row_errors(got, cpu.prompt_logits(prompt, 100), V);
  std::printf("%-20s 3 expert lanes: logits error p90 %.2e, max %.2e\n", model->name.c_str(), e.p90, e.max);
  CHECK(e.p90 < kP90Tol);
}

TEST_CASE("a step mixing prefill chunks and decode tokens matches the CPU backend", "[gpu][model]") {
  // Step 1: prompts of 20 (attention tiles) and 5 tokens (decode kernels); step 2: A and B decode
  // around C's 70-token prompt (tiles of 64 + 6 between two decode tokens); step 3: all decode.
  for (auto arch : {config::ModelArchitecture::kMixtral, config::ModelArchitecture::kOlmoe}) {
    auto model = mid_model(arch);
    INFO(model->name);
    const int32_t V = model->config.vocab_size;
    GpuHarness gpu(*model);
    runtime::test::Harness cpu(model, 1, 256, 4);
    std::vector<std::vector<int32_t>> seqs = {random_prompt(20, V, 31), random_prompt(5, V, 32),
                                              random_prompt(70, V, 33)};
    std::vector<std::vector<int32_t>> tables(3), cpu_tables(3);
    for (size_t s = 0; s < 3; ++s) {
      REQUIRE(gpu.blocks.allocate(blocks_for_tokens(int64_t(seqs[s].size()) + 4, 4), tables[s]));
      REQUIRE(cpu.allocators[0].allocate(blocks_for_tokens(int64_t(seqs[s].size()) + 4, 4), cpu_tables[s]));
    }
    std::vector<int32_t> computed(3, 0);
    const std::vector<std::vector<size_t>> steps = {{0, 1}, {0, 2, 1}, {0, 1, 2}};
    std::vector<double> errs;
    for (const auto& order : steps) {
      StepBatch b, bc;
      for (size_t i = 0; i < order.size(); ++i) {
        const size_t s = order[i];
        SequenceChunk c;
        c.start_position = computed[s];
        c.num_tokens = int32_t(seqs[s].size()) - computed[s];
        c.tokens = seqs[s].data() + computed[s];
        c.num_blocks = int32_t(tables[s].size());
        c.logits = LogitsMode::kLast;
        c.logits_row = int32_t(i);
        c.block_table = tables[s].data();
        b.chunks.push_back(c);
        c.block_table = cpu_tables[s].data();
        bc.chunks.push_back(c);
      }
      b.num_logits_rows = bc.num_logits_rows = int32_t(order.size());
      const StepResult& g = gpu.runner->execute(b);
      std::vector<float> got(g.logits, g.logits + order.size() * size_t(V));
      const StepResult& r = cpu.exec->execute(bc);
      std::vector<float> want(r.logits, r.logits + order.size() * size_t(V));
      append_row_errors(got, want, V, errs);
      for (size_t i = 0; i < order.size(); ++i) {
        computed[order[i]] = int32_t(seqs[order[i]].size());
        seqs[order[i]].push_back(runtime::test::argmax(want.data() + i * size_t(V), V));
      }
    }
    const auto e = summarize(errs);
    std::printf("%-20s mixed steps, %zu rows: logits error p90 %.2e, max %.2e\n", model->name.c_str(), errs.size(),
                e.p90, e.max);
    CHECK(errs.size() == 8);
    CHECK(e.p90 < kP90Tol);
    CHECK(e.max < kMaxTol);
  }
}

namespace {

struct Fixture {
  std::vector<std::vector<int32_t>> prompts, greedy;
  std::vector<float> all_logits;
};

Fixture load_fixture(const std::string& dir) {
  auto doc = config::JsonDocument::parse_file(dir + "/expected.json");
  REQUIRE(doc.ok());
  Fixture f;
  for (const auto& p : doc->root()["prompts"].items()) {
    std::vector<int32_t> ids, greedy;
    for (const auto& x : p["ids"].items()) ids.push_back(int32_t(x.as_int()));
    for (const auto& x : p["greedy"].items()) greedy.push_back(int32_t(x.as_int()));
    f.prompts.push_back(ids);
    f.greedy.push_back(greedy);
  }
  for (const auto& row : doc->root()["all_logits"].items()) {
    for (const auto& x : row.items()) f.all_logits.push_back(float(x.as_double()));
  }
  return f;
}

}  // namespace

TEST_CASE("GPU logits and greedy tokens against the Hugging Face fixtures", "[gpu][model][hf]") {
  for (const char* name : {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"}) {
    INFO(name);
    const std::string dir = std::string("tests/fixtures/models/") + name;
    auto model = load_model(dir);
    REQUIRE(model.ok());
    auto fx = load_fixture(dir);
    const int32_t V = (*model)->config.vocab_size;
    GpuHarness gpu(**model);
    auto got = gpu.prompt_logits(fx.prompts[0], int32_t(fx.prompts[0].size()));
    auto e = row_errors(got, fx.all_logits, V);
    std::printf("%-10s vs transformers: logits error p90 %.2e, max %.2e\n", name, e.p90, e.max);
    CHECK(e.p90 < kP90Tol);
    CHECK(e.max < kMaxTol);

    // Greedy: the reference's margins come from the float32 CPU backend, teacher-forced along the
    // transformers greedy sequence (the CPU backend matches transformers within 1e-4).
    runtime::test::Harness cpu(*model, 1, 256, 4);
    for (size_t p = 0; p < fx.prompts.size(); ++p) {
      const auto& ref = fx.greedy[p];
      std::vector<int32_t> seq = fx.prompts[p];
      size_t confident = 0;
      for (; confident < ref.size(); ++confident) {
        auto logits = cpu.prompt_logits(seq, int32_t(seq.size()));
        const float* last = logits.data() + (seq.size() - 1) * size_t(V);
        std::vector<float> row(last, last + V);
        std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
        if (row[0] - row[1] < kMarginFloor) break;
        seq.push_back(ref[confident]);
      }
      auto tokens = gpu.greedy(fx.prompts[p], int32_t(ref.size()));
      size_t same = 0;
      while (same < ref.size() && tokens[same] == ref[same]) ++same;
      std::printf("%-10s prompt %zu: %zu of %zu greedy tokens identical; %zu reference steps with margin >= %.2f\n",
                  name, p, same, ref.size(), confident, double(kMarginFloor));
      CHECK(same >= confident);
    }
  }
}
