// Online Aurora on 2 GPUs (docs/online.md, "GPU"):
// - forced migrations under load (one model, and two colocated models) leave every stream's greedy
//   tokens identical to a run without;
//   the steps report measured per-rank expert and exchange times;
// - too few spare slots: the migration is refused with a clear error, the old plan stays;
// - a staged copy that is not committed is never used (its slot is poisoned: the logits do not
//   change), a committed one is bit-identical to its source, and the layer computes with it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "aurora/config/model_config.hpp"
#include "aurora/runtime/engine.hpp"
#include "cuda_placement_host.hpp"
#include "cuda_weights.hpp"
#include "engine_test_support.hpp"
#include "expert_parallel_group.hpp"
#include "gpu_test_support.hpp"
#include "online/online_engine.hpp"
#include "online_test_support.hpp"

// The rendezvous child of multi_gpu_main.cpp (not used here).
int run_rendezvous_child() { return 1; }

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int32_t kExperts = 16, kLayers = 4;

std::string write_config(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("aurora_online_gpu_" + std::to_string(::getpid())) / name;
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
    "hidden_size": 512, "intermediate_size": 256, "num_attention_heads": 8, "num_key_value_heads": 8,
    "num_hidden_layers": )" << kLayers
                                     << R"(, "num_experts": )" << kExperts << R"(, "num_experts_per_tok": 4,
    "vocab_size": 1024, "max_position_embeddings": 1024, "rms_norm_eps": 1e-05, "norm_topk_prob": false,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "clip_qkv": null,
    "tie_word_embeddings": false, "eos_token_id": 1, "bos_token_id": null, "hidden_act": "silu"})";
  return dir.string();
}

EngineOptions gpu_options(const std::string& dir) {
  EngineOptions o;
  o.model_dirs = {dir};
  o.device = "cuda:0";
  o.num_ranks = 2;
  o.random_weights = true;
  o.seed = 11;
  o.max_num_seqs = 32;
  // At most 64 tokens per step: every step stays on the GEMV paths, whose rows do not depend on
  // the rest of the batch (above 64 tokens cuBLASLt picks its algorithm by the row count, so a
  // run's tokens would depend on how the engine's timing happened to group the requests).
  o.max_num_batched_tokens = kGemvMaxTokens;
  o.kv_cache_tokens = 16384;
  o.online.replan = ReplanMode::kOff;
  o.online.order_source = OrderSource::kLive;
  o.online.replan_interval_ms = 20;
  o.online.stats_half_life_s = 0.5;
  return o;
}

EngineOptions eager(EngineOptions o, int32_t spare_slots) {
  o = runtime::test::switch_at_every_run(std::move(o));
  o.online.expert_spare_slots = spare_slots;
  return o;
}

struct Run {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int64_t> first_version, last_version;
};

// Stream i goes to models[i % size] (empty: the only model).
Run run_streams(Engine& engine, int32_t streams, int32_t max_tokens, const std::vector<std::string>& models = {}) {
  std::vector<std::shared_ptr<runtime::test::CollectingSink>> sinks;
  Run run;
  run.first_version.assign(static_cast<size_t>(streams), -1);
  run.last_version.assign(static_cast<size_t>(streams), -1);
  for (int32_t i = 0; i < streams; ++i) {
    auto sink = std::make_shared<runtime::test::CollectingSink>();
    sink->on_delta_hook = [&engine, &run, i](int n) {
      const int64_t v = engine.stats().plan_version;
      if (n == 1) run.first_version[static_cast<size_t>(i)] = v;
      run.last_version[static_cast<size_t>(i)] = v;
      return true;
    };
    std::mt19937 rng(static_cast<uint32_t>(100 + i));
    // Short prompts (<= 7 tokens, <= 60 for 12 streams): none is ever split across steps, however
    // the engine's timing groups them, so every stream sees the same kernels in every run.
    std::vector<int32_t> prompt(static_cast<size_t>(3 + i % 5));
    for (auto& t : prompt) t = 2 + static_cast<int32_t>(rng() % 1000);
    auto r = runtime::test::make_request(prompt, max_tokens);
    if (!models.empty()) r.model = models[static_cast<size_t>(i) % models.size()];
    r.sampling.ignore_eos = true;
    REQUIRE(engine.submit(r, sink).ok());
    sinks.push_back(sink);
  }
  for (auto& s : sinks) {
    REQUIRE(s->wait(std::chrono::seconds(180)));
    run.tokens.push_back(s->token_ids());
  }
  return run;
}

bool wait_until_runs(Engine& engine, int64_t runs) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (engine.plan_snapshot().planner_runs_total >= runs) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

config::ModelConfig load(const std::string& dir) {
  auto c = config::load_model_config(dir + "/config.json");
  REQUIRE(c.ok());
  return *c;
}

std::vector<uint16_t> download_bf16(const bf16* p, int64_t count, int device) {
  AURORA_CUDA_CHECK(cudaSetDevice(device));
  std::vector<uint16_t> out(static_cast<size_t>(count));
  AURORA_CUDA_CHECK(cudaMemcpy(out.data(), p, static_cast<size_t>(count) * 2, cudaMemcpyDeviceToHost));
  return out;
}

}  // namespace

TEST_CASE("GPU: forced migrations under load leave every stream's greedy tokens unchanged", "[online_gpu][migration]") {
  const std::string dir = write_config("rotate");
  auto reference_engine = create_engine(gpu_options(dir));
  REQUIRE(reference_engine.ok());
  const Run reference = run_streams(**reference_engine, 12, 48);
  (*reference_engine)->shutdown(0ms);

  // The same streams again and again while every layer keeps rotating, until at least two full
  // rotations have been committed (each round's tokens must equal the reference's).
  auto engine = create_engine_with_policy(eager(gpu_options(dir), kExperts / 2), runtime::test::rotate_everything);
  REQUIRE(engine.ok());
  int across = 0, rounds = 0;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  do {
    const Run moved = run_streams(**engine, 12, 48);
    ++rounds;
    REQUIRE(moved.tokens.size() == reference.tokens.size());
    for (size_t i = 0; i < moved.tokens.size(); ++i) {
      INFO("round " << rounds << ", stream " << i);
      CHECK(moved.tokens[i].size() == 48);
      CHECK(moved.tokens[i] == reference.tokens[i]);
      across += moved.last_version[i] > moved.first_version[i];
    }
  } while (((*engine)->stats().plan_version < 3 || across < 6) && std::chrono::steady_clock::now() < deadline);
  const EngineStats stats = (*engine)->stats();
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  (*engine)->shutdown(0ms);
  INFO(rounds << " rounds of 12 streams");
  INFO(snap.last_decision);
  CHECK(snap.placement_supported);
  CHECK(stats.plan_version >= 3);
  CHECK(stats.expert_migrations_total >= 2 * kLayers * kExperts);
  CHECK(snap.planner_failures_total == 0);
  CHECK(across >= 6);
  // Measured per-rank times reach the planner's statistics.
  REQUIRE(snap.models.size() == 1);
  REQUIRE(snap.models[0].ranks.size() == 2);
  for (const auto& r : snap.models[0].ranks) {
    CHECK(r.expert_seconds_per_step > 0);
    CHECK(r.exchange_seconds_per_step > 0);
    CHECK(r.rows_per_step > 0);
  }
  for (const auto& l : snap.models[0].layers) CHECK(l.a2a_measured_s > 0);
}

TEST_CASE("GPU: colocated models: forced migrations of both under load leave every stream's tokens unchanged",
          "[online_gpu][migration][colocation]") {
  const std::string a = write_config("coloc_a"), b = write_config("coloc_b");
  const std::vector<std::string> models{"coloc_a", "coloc_b"};
  EngineOptions options = gpu_options(a);
  options.model_dirs = {a, b};
  auto reference_engine = create_engine(options);
  REQUIRE(reference_engine.ok());
  const Run reference = run_streams(**reference_engine, 12, 32, models);
  (*reference_engine)->shutdown(0ms);

  auto engine = create_engine_with_policy(eager(options, kExperts / 2), runtime::test::rotate_everything);
  REQUIRE(engine.ok());
  int rounds = 0;
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  do {
    const Run moved = run_streams(**engine, 12, 32, models);
    ++rounds;
    REQUIRE(moved.tokens.size() == reference.tokens.size());
    for (size_t i = 0; i < moved.tokens.size(); ++i) {
      INFO("round " << rounds << ", stream " << i << " (" << models[i % 2] << ")");
      CHECK(moved.tokens[i].size() == 32);
      CHECK(moved.tokens[i] == reference.tokens[i]);
    }
  } while ((*engine)->stats().plan_version < 3 && std::chrono::steady_clock::now() < deadline);
  const EngineStats stats = (*engine)->stats();
  const PlanSnapshot snap = (*engine)->plan_snapshot();
  (*engine)->shutdown(0ms);
  INFO(rounds << " rounds; " << snap.last_decision);
  CHECK(snap.placement_supported);
  CHECK(snap.models.size() == 2);
  CHECK(stats.plan_version >= 3);
  // Every switch moves every expert of both models.
  CHECK(stats.expert_migrations_total >= 2 * 2 * kLayers * kExperts);
  CHECK(snap.planner_failures_total == 0);
}

TEST_CASE("GPU: too few spare slots refuse the migration and keep the plan", "[online_gpu][slots]") {
  const std::string dir = write_config("exhausted");
  auto reference_engine = create_engine(gpu_options(dir));
  REQUIRE(reference_engine.ok());
  const Run reference = run_streams(**reference_engine, 8, 24);
  (*reference_engine)->shutdown(0ms);

  auto engine = create_engine_with_policy(eager(gpu_options(dir), 1), runtime::test::rotate_everything);
  REQUIRE(engine.ok());
  const Run run = run_streams(**engine, 8, 24);
  REQUIRE(run.tokens == reference.tokens);
  // The planner keeps trying on the window's statistics and keeps being refused.
  PlanSnapshot snap;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    snap = (*engine)->plan_snapshot();
    if (snap.last_decision.find("expert slots exhausted") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  } while (std::chrono::steady_clock::now() < deadline);
  const EngineStats stats = (*engine)->stats();
  (*engine)->shutdown(0ms);
  INFO(snap.last_decision);
  CHECK(stats.plan_version == 1);
  CHECK(stats.expert_migrations_total == 0);
  CHECK(snap.planner_failures_total >= 1);
  CHECK(snap.last_decision.find("expert slots exhausted") != std::string::npos);
  CHECK(snap.last_decision.find("the plan in force stays") != std::string::npos);
}

TEST_CASE("GPU: staged copies are unused until commit, committed copies are bit-identical", "[online_gpu][staging]") {
  const auto config = load(write_config("staging"));
  EpGroupOptions o;
  o.devices = {0, 1};
  o.runner.max_tokens_per_step = 128;
  o.runner.max_seqs_per_step = 8;
  o.runner.max_context = 256;
  o.runner.kv_cache_tokens = 2048;
  o.expert_spare_slots = 2;
  auto created = ExpertParallelGroup::create({EpGroupModel{"m", config, nullptr, 3}}, o);
  REQUIRE(created.ok());
  std::shared_ptr<ExpertParallelGroup> group(std::move(*created));
  auto host = make_cuda_placement_host(group, 0);
  REQUIRE(host->num_ranks() == 2);

  // Three 16-token prompts per GPU (one KV block each); every run recomputes the same prefill.
  constexpr int kSeqs = 6, kLen = 16;
  std::vector<std::vector<int32_t>> prompts(kSeqs);
  std::vector<std::vector<int32_t>> blocks(kSeqs);
  for (int i = 0; i < kSeqs; ++i) {
    std::mt19937 rng(static_cast<uint32_t>(i + 40));
    for (int t = 0; t < kLen; ++t) prompts[size_t(i)].push_back(2 + static_cast<int32_t>(rng() % 1000));
    blocks[size_t(i)] = {i / 2};
  }
  auto logits = [&] {
    StepBatch batch;
    for (int i = 0; i < kSeqs; ++i) {
      SequenceChunk c;
      c.rank = i % 2;
      c.tokens = prompts[size_t(i)].data();
      c.num_tokens = kLen;
      c.block_table = blocks[size_t(i)].data();
      c.num_blocks = 1;
      c.logits = LogitsMode::kLast;
      c.logits_row = i;
      batch.chunks.push_back(c);
    }
    batch.num_logits_rows = kSeqs;
    std::vector<GroupStep> steps{GroupStep{&batch, nullptr, nullptr}};
    const StepResult* res = group->execute(steps)[0];
    REQUIRE(res != nullptr);
    REQUIRE(res->rank_timing.size() == 2);
    for (const auto& t : res->rank_timing) {
      CHECK(t.expert_seconds > 0);
      CHECK(t.exchange_seconds > 0);
      CHECK(t.rows_computed > 0);
    }
    return std::vector<float>(res->logits, res->logits + size_t(kSeqs) * config.vocab_size);
  };
  const auto before = logits();

  const int32_t layer = 1;
  auto owners = host->owners();
  const auto owner = owners[size_t(layer)];
  int32_t expert = -1;
  for (int32_t e = 0; e < kExperts && expert < 0; ++e) {
    if (owner[size_t(e)] == 0) expert = e;
  }
  REQUIRE(expert >= 0);
  const int32_t src_slot = cuda_expert_slot(*host, layer, expert, 0);
  REQUIRE(src_slot >= 0);
  CHECK(cuda_expert_slot(*host, layer, expert, 1) == -1);

  const CudaWeights& w0 = group->runner(0, 0).weights();
  const CudaWeights& w1 = group->runner(0, 1).weights();
  const int64_t gu = int64_t{2} * config.moe_intermediate_size * config.hidden_size;
  const int64_t dn = int64_t{config.hidden_size} * config.moe_intermediate_size;
  {
    // A staged copy, then its slot poisoned (NaN bf16): not committed, so never read.
    auto staged = host->stage(layer, expert, 1);
    REQUIRE(staged != nullptr);
    for (int32_t s = static_cast<int32_t>(w1.held_experts(layer).size()); s < w1.num_slots(layer); ++s) {
      AURORA_CUDA_CHECK(cudaSetDevice(group->device(1)));
      AURORA_CUDA_CHECK(cudaMemset(w1.layers[size_t(layer)].experts.gate_up + s * gu, 0xFF, size_t(gu) * 2));
      AURORA_CUDA_CHECK(cudaMemset(w1.layers[size_t(layer)].experts.down + s * dn, 0xFF, size_t(dn) * 2));
    }
    CHECK(logits() == before);
    CHECK(cuda_expert_slot(*host, layer, expert, 1) == -1);
  }  // dropped without a commit: the slot is free again

  // Slots exhausted: more moves into rank 1 than it has free slots -> a clear error.
  {
    std::vector<std::vector<int32_t>> too_many = owners;
    for (auto& r : too_many[size_t(layer)]) r = 1;
    auto fits = host->check_moves(too_many);
    REQUIRE_FALSE(fits.ok());
    CHECK(fits.error().message.find("expert slots exhausted") != std::string::npos);
  }

  std::vector<std::unique_ptr<StagedExpert>> staged;
  staged.push_back(host->stage(layer, expert, 1));
  auto next = owner;
  next[size_t(expert)] = 1;
  CHECK(host->commit_layer(layer, next, std::move(staged)) == 1);
  CHECK(host->owners()[size_t(layer)] == next);
  CHECK(group->placement(0).layers[size_t(layer)].owner == next);
  const int32_t dst_slot = cuda_expert_slot(*host, layer, expert, 1);
  REQUIRE(dst_slot >= static_cast<int32_t>(w1.held_experts(layer).size()));
  CHECK(cuda_expert_slot(*host, layer, expert, 0) == -1);
  // Bit-identical to the source (the source slot is free now but not yet overwritten).
  CHECK(download_bf16(w1.layers[size_t(layer)].experts.gate_up + dst_slot * gu, gu, group->device(1)) ==
        download_bf16(w0.layers[size_t(layer)].experts.gate_up + src_slot * gu, gu, group->device(0)));
  CHECK(download_bf16(w1.layers[size_t(layer)].experts.down + dst_slot * dn, dn, group->device(1)) ==
        download_bf16(w0.layers[size_t(layer)].experts.down + src_slot * dn, dn, group->device(0)));
  // The layer computes with the moved copy: the same logits (the rows of each expert are
  // computed alike wherever it lives).
  const auto after = logits();
  double max_diff = 0;
  for (size_t i = 0; i < after.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(after[i] - before[i])));
  CHECK(max_diff <= 1e-3);
  for (int row = 0; row < kSeqs; ++row) {
    const auto* a = after.data() + size_t(row) * config.vocab_size;
    const auto* b = before.data() + size_t(row) * config.vocab_size;
    CHECK(std::max_element(a, a + config.vocab_size) - a == std::max_element(b, b + config.vocab_size) - b);
  }

  // And back: the expert returns to rank 0 (into a free slot there), rank 1's slot is freed.
  std::vector<std::unique_ptr<StagedExpert>> back;
  back.push_back(host->stage(layer, expert, 0));
  CHECK(host->commit_layer(layer, owner, std::move(back)) == 1);
  CHECK(cuda_expert_slot(*host, layer, expert, 1) == -1);
  CHECK(cuda_expert_slot(*host, layer, expert, 0) >= 0);
  const auto returned = logits();
  max_diff = 0;
  for (size_t i = 0; i < returned.size(); ++i)
    max_diff = std::max(max_diff, double(std::fabs(returned[i] - before[i])));
  CHECK(max_diff <= 1e-3);
}

TEST_CASE("GPU: the window order gives the live order's tokens, also across migrations", "[online_gpu][order]") {
  const std::string dir = write_config("window");
  EngineOptions live = gpu_options(dir);
  live.online.replan = ReplanMode::kOrder;
  auto a = create_engine(live);
  REQUIRE(a.ok());
  const Run reference = run_streams(**a, 12, 32);
  (*a)->shutdown(0ms);

  // Window order only (templates fitted to every step's counts on both GPUs).
  EngineOptions window = live;
  window.online.order_source = OrderSource::kWindow;
  auto b = create_engine(window);
  REQUIRE(b.ok());
  (void)run_streams(**b, 12, 8);  // the window learns the traffic; templates get installed
  REQUIRE(wait_until_runs(**b, 3));
  const Run run = run_streams(**b, 12, 32);
  const PlanSnapshot snap = (*b)->plan_snapshot();
  (*b)->shutdown(0ms);
  CHECK(run.tokens == reference.tokens);
  int window_layers = 0;
  for (const auto& l : snap.models.at(0).layers) window_layers += l.order_source == "window";
  CHECK(window_layers == kLayers);

  // Auto order and forced migrations together (templates dropped and rebuilt per switched layer).
  EngineOptions both = eager(gpu_options(dir), kExperts / 2);
  both.online.order_source = OrderSource::kAuto;
  auto c = create_engine_with_policy(both, runtime::test::rotate_everything);
  REQUIRE(c.ok());
  // Rounds of the same streams until a migration has been committed (one round can end first).
  int rounds = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    const Run moved = run_streams(**c, 12, 32);
    ++rounds;
    INFO("round " << rounds);
    CHECK(moved.tokens == reference.tokens);
  } while ((*c)->stats().plan_version < 2 && std::chrono::steady_clock::now() < deadline);
  const EngineStats stats = (*c)->stats();
  (*c)->shutdown(0ms);
  CHECK(stats.plan_version >= 2);
}
