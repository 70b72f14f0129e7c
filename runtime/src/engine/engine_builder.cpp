// create_engine's model half: validates EngineOptions, loads each model and its tokenizer (or
// builds the embedded one), sizes the KV cache, places the experts with the Aurora planner and
// builds the executor and scheduler of every ModelInstance.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "engine/engine_builder.hpp"
#include "engine/null_tokenizer.hpp"
#include "executor/placement_planner.hpp"
#include "model/embedded_model.hpp"
#include "model/model_builder.hpp"

namespace aurora::runtime {

namespace fs = std::filesystem;

Result<void> validate_engine_options(const EngineOptions& o) {
  auto range = [](const char* field, int64_t v, int64_t lo, int64_t hi) -> Result<void> {
    if (v < lo || v > hi) {
      return Error::invalid(std::string("engine.") + field, "must be in [" + std::to_string(lo) + ", " +
                                                                std::to_string(hi) + "], got " + std::to_string(v));
    }
    return {};
  };
  for (auto r : {range("num_ranks", o.num_ranks, 1, 64), range("max_num_seqs", o.max_num_seqs, 1, 1 << 16),
                 range("max_num_batched_tokens", o.max_num_batched_tokens, 1, 1 << 20),
                 range("max_waiting", o.max_waiting, 0, 1 << 24), range("kv_block_size", o.kv_block_size, 1, 1024),
                 range("kv_cache_tokens", o.kv_cache_tokens, 0, int64_t{1} << 40),
                 range("max_waiting_tokens", o.max_waiting_tokens, 0, int64_t{1} << 40)}) {
    if (!r) return r;
  }
  if (o.max_num_batched_tokens < o.max_num_seqs) {
    // Every running sequence must be able to decode in every step (no starvation by budget).
    return Error::invalid("engine.max_num_batched_tokens", "must be >= max_num_seqs (" +
                                                               std::to_string(o.max_num_seqs) + "), got " +
                                                               std::to_string(o.max_num_batched_tokens));
  }
  if (o.model_dirs.size() > 4) {
    return Error::invalid("engine.model_dirs", "at most 4 models, got " + std::to_string(o.model_dirs.size()));
  }
  return {};
}

namespace {

constexpr int64_t kDefaultKvBytes = int64_t{256} << 20;  // when kv_cache_tokens == 0
constexpr int32_t kMaxDeviceContext = 16384;             // bounds per-step block tables and attention workspace

Result<void> finish_instance(ModelInstance& mi);

bool embedded_tokenizer_fits(const config::ModelConfig& c) {
  auto tok = make_embedded_tokenizer();
  return tok && tok->vocab_size() <= c.vocab_size;
}

// A model directory's config.json (+ generation_config.json) with random weights: on a device
// backend the weights are generated on the device later (the Model holds none); on the CPU they are
// generated here.
Result<std::shared_ptr<const Model>> random_weights_model(const std::string& dir, const EngineOptions& o,
                                                          Backend& backend) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error::make(ErrorCode::kNotFound, dir + ": model directory not found");
  auto config = config::load_model_config((fs::path(dir) / "config.json").string());
  if (!config) return config.error();
  config::GenerationDefaults generation;
  const fs::path gen_path = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen_path, ec)) {
    auto gen = config::load_generation_config(gen_path.string());
    if (!gen) return gen.error();
    generation = std::move(*gen);
  }
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(dir).lexically_normal().parent_path().filename().string();
  if (name.empty()) name = "model";
  ModelBuilder builder(std::move(*config), o.seed, name);
  if (backend.is_host_memory()) builder.fill_random();  // a device backend generates them on the device
  builder.model().generation = std::move(generation);
  return builder.finish();
}

DeviceRunnerOptions device_runner_options(const config::ModelConfig& c, const EngineOptions& o) {
  DeviceRunnerOptions ro;
  ro.max_tokens_per_step = o.max_num_batched_tokens;
  ro.max_seqs_per_step = o.max_num_seqs;
  ro.kv_block_size = o.kv_block_size;
  ro.max_context = std::min<int32_t>(c.max_position_embeddings, kMaxDeviceContext);
  ro.kv_cache_tokens = o.kv_cache_tokens;
  ro.gpu_memory_fraction = o.gpu_memory_fraction;
  ro.random_weights = o.random_weights;
  ro.seed = o.seed;
  // Expert copies need room only when the placement may move (online, --replan full).
  const bool moves = o.num_ranks > 1 && o.online.replan == ReplanMode::kFull;
  ro.expert_spare_slots = moves ? o.online.expert_spare_slots : 0;
  return ro;
}

// The engine-side state of a model whose DeviceRunner is built: scheduler over its ranks' KV
// blocks, routing statistics, per-step scratch.
Result<void> finish_device_instance(ModelInstance& mi, const EngineOptions& o, int32_t num_ranks, int32_t max_context) {
  const auto& c = mi.model->config;
  std::fprintf(stderr, "aurora: %s on %s\n", mi.name.c_str(), mi.device->memory_report().c_str());
  const int32_t blocks = mi.device->num_kv_blocks();
  mi.max_context = static_cast<int32_t>(std::min<int64_t>(max_context, int64_t{blocks} * o.kv_block_size));
  SchedulerOptions so;
  so.num_ranks = num_ranks;
  so.max_num_seqs = o.max_num_seqs;
  so.max_num_batched_tokens = o.max_num_batched_tokens;
  so.block_size = o.kv_block_size;
  so.blocks_per_rank = blocks;
  mi.scheduler = std::make_unique<BatchScheduler>(so);
  mi.routing = std::make_unique<RoutingStats>(c.num_layers, num_ranks, c.num_experts, kRoutingWindowSteps);
  mi.sampling_rows.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.sampled_tokens.resize(static_cast<size_t>(o.max_num_seqs));
  mi.sampled_chunks.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.batch.chunks.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.last_exchange.assign(static_cast<size_t>(c.num_layers), LayerExchangeCost{});
  return {};
}

Result<void> check_memory_fraction(const EngineOptions& o) {
  if (!(o.gpu_memory_fraction > 0.0 && o.gpu_memory_fraction <= 1.0)) {
    return Error::invalid("engine.gpu_memory_fraction",
                          "must be in (0, 1], got " + std::to_string(o.gpu_memory_fraction));
  }
  return {};
}

// On a device backend with several GPUs (num_ranks > 1) or two models: one expert-parallel group
// (ranks = GPUs from the backend's device on; two models colocated on every GPU, their experts
// placed together by the scheduler's deployment).
Result<void> build_expert_parallel_runtime(std::vector<std::unique_ptr<ModelInstance>>& instances,
                                           const EngineOptions& o, Backend& backend) {
  if (auto ok = check_memory_fraction(o); !ok) return ok;
  if (instances.size() > 2) {
    return Error::invalid("engine.model_dirs",
                          "a GPU engine serves at most 2 models (colocated), got " + std::to_string(instances.size()));
  }
  std::vector<const Model*> models;
  int32_t max_context = kMaxDeviceContext;
  for (const auto& mi : instances) {
    models.push_back(mi->model.get());
    max_context = std::min<int32_t>(max_context, mi->model->config.max_position_embeddings);
  }
  DeviceRunnerOptions ro = device_runner_options(instances.front()->model->config, o);
  ro.max_context = max_context;
  auto group = make_expert_parallel_runners(models, ro, o.num_ranks, backend);
  if (!group) return group.error();
  for (size_t m = 0; m < instances.size(); ++m) {
    ModelInstance& mi = *instances[m];
    mi.device = std::move(group->runners[m]);
    mi.together = group->together;
    auto done = finish_device_instance(mi, o, o.num_ranks, max_context);
    if (!done) return done;
    auto finished = finish_instance(mi);
    if (!finished) return finished;
  }
  return {};
}

// On a device backend (one GPU, one model): the DeviceRunner holds the weights and the KV cache,
// sized from the device's memory; the scheduler gets its block count.
Result<void> build_device_runtime(ModelInstance& mi, const EngineOptions& o, Backend& backend) {
  if (auto ok = check_memory_fraction(o); !ok) return ok;
  const DeviceRunnerOptions ro = device_runner_options(mi.model->config, o);
  auto runner = make_device_runner(*mi.model, ro, backend);
  if (!runner) return runner.error();
  mi.device = std::move(*runner);
  return finish_device_instance(mi, o, 1, ro.max_context);
}

Result<void> build_runtime(ModelInstance& mi, const EngineOptions& o, Backend& backend,
                           const ExpertPlacement* placement_given) {
  if (!backend.is_host_memory()) {
    auto built = build_device_runtime(mi, o, backend);
    if (!built) return built;
    return finish_instance(mi);
  }
  const auto& c = mi.model->config;
  const int64_t kv_bytes_per_token = int64_t{c.num_layers} * 2 * c.num_kv_heads * c.head_dim * 4;
  int64_t total_tokens = o.kv_cache_tokens;
  if (total_tokens == 0) {
    total_tokens =
        std::min<int64_t>(kDefaultKvBytes / kv_bytes_per_token, int64_t{o.max_num_seqs} * c.max_position_embeddings);
    total_tokens = std::max<int64_t>(total_tokens, int64_t{o.kv_block_size} * o.num_ranks);
  }
  const int32_t blocks_per_rank =
      std::max(1, blocks_for_tokens((total_tokens + o.num_ranks - 1) / o.num_ranks, o.kv_block_size));
  mi.max_context =
      static_cast<int32_t>(std::min<int64_t>(c.max_position_embeddings, int64_t{blocks_per_rank} * o.kv_block_size));

  ExecutorOptions eo;
  eo.num_ranks = o.num_ranks;
  eo.max_tokens_per_step = o.max_num_batched_tokens;
  eo.max_seqs_per_step = o.max_num_seqs;
  eo.max_logits_rows = o.max_num_seqs;
  eo.kv_block_size = o.kv_block_size;
  eo.kv_blocks_per_rank = blocks_per_rank;
  eo.max_context = mi.max_context;
  const int32_t ranks = o.num_ranks;
  eo.link_gbps = o.online.link_gbps;
  eo.phase_latency_s = o.online.phase_latency_us * 1e-6;
  eo.emulation = o.emulation;
  ExchangePlannerFactory planners = [ranks, eo]() {
    return make_aurora_planner(ranks, eo.link_gbps, eo.phase_latency_s);
  };
  mi.executor = std::make_unique<ModelExecutor>(mi.model, eo, backend, planners);
  if (placement_given) {
    ExpertPlacement placement = *placement_given;
    placement.version = 1;
    mi.executor->set_placement(std::move(placement));
  } else {
    auto placement = plan_expert_placement(c, o.num_ranks, PlacementInputs{});
    if (!placement) return placement.error();
    placement->version = 1;
    mi.executor->set_placement(std::move(*placement));
  }

  SchedulerOptions so;
  so.num_ranks = o.num_ranks;
  so.max_num_seqs = o.max_num_seqs;
  so.max_num_batched_tokens = o.max_num_batched_tokens;
  so.block_size = o.kv_block_size;
  so.blocks_per_rank = blocks_per_rank;
  mi.scheduler = std::make_unique<BatchScheduler>(so);
  mi.routing = std::make_unique<RoutingStats>(c.num_layers, o.num_ranks, c.num_experts, kRoutingWindowSteps);

  mi.sampling_rows.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.sampled_tokens.resize(static_cast<size_t>(o.max_num_seqs));
  mi.sampled_chunks.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.batch.chunks.reserve(static_cast<size_t>(o.max_num_seqs));
  mi.sampling_workspace = DeviceBuffer(backend, kernels::cpu::sampling_workspace_bytes(c.vocab_size));
  mi.last_exchange.assign(static_cast<size_t>(c.num_layers), LayerExchangeCost{});

  return finish_instance(mi);
}

Result<void> finish_instance(ModelInstance& mi) {
  const auto& c = mi.model->config;
  const std::vector<int32_t> tokenizer_eos = mi.tokenizer->eos_ids();
  std::set<int32_t> eos(tokenizer_eos.begin(), tokenizer_eos.end());
  for (int32_t id : mi.model->eos_token_ids()) eos.insert(id);
  for (int32_t id : eos) {
    if (id >= 0 && id < c.vocab_size) mi.eos_ids.push_back(id);
  }
  mi.info.name = mi.name;
  mi.info.max_context_len = mi.max_context;
  mi.info.vocab_size = c.vocab_size;
  mi.info.eos_token_ids = mi.eos_ids;
  mi.info.num_layers = c.num_layers;
  mi.info.num_experts = c.num_experts;
  return {};
}

// Builds every instance's runtime: one expert-parallel group on a device backend with several
// ranks or two models; else each model alone (two models on CPU ranks get a joint, colocated
// placement of their experts).
Result<void> build_all(std::vector<std::unique_ptr<ModelInstance>>& instances, const EngineOptions& o,
                       Backend& backend) {
  if (!backend.is_host_memory() && (o.num_ranks > 1 || instances.size() > 1)) {
    return build_expert_parallel_runtime(instances, o, backend);
  }
  std::vector<ExpertPlacement> joint;
  if (backend.is_host_memory() && instances.size() == 2 && o.num_ranks > 1) {
    std::vector<const config::ModelConfig*> configs{&instances[0]->model->config, &instances[1]->model->config};
    auto planned = plan_model_placements(configs, {}, std::vector<RankSpec>(static_cast<size_t>(o.num_ranks)), true);
    if (!planned) return planned.error();
    joint = std::move(*planned);
  }
  for (size_t m = 0; m < instances.size(); ++m) {
    auto built = build_runtime(*instances[m], o, backend, joint.empty() ? nullptr : &joint[m]);
    if (!built) return built;
  }
  return {};
}

}  // namespace

Result<std::vector<std::unique_ptr<ModelInstance>>> build_instances_for(
    const EngineOptions& o, Backend& backend, std::vector<std::shared_ptr<const Model>> models) {
  std::vector<std::unique_ptr<ModelInstance>> out;
  std::set<std::string> names;
  for (auto& model : models) {
    auto mi = std::make_unique<ModelInstance>();
    const auto& c = model->config;
    mi->tokenizer = make_null_tokenizer(model->name, c.vocab_size, c.bos_token_id, model->eos_token_ids());
    mi->model = std::move(model);
    mi->name = mi->model->name;
    for (int i = 2; names.count(mi->name); ++i) mi->name = mi->model->name + "-" + std::to_string(i);
    names.insert(mi->name);
    out.push_back(std::move(mi));
  }
  auto built = build_all(out, o, backend);
  if (!built) return built.error();
  return out;
}

Result<std::vector<std::unique_ptr<ModelInstance>>> build_model_instances(const EngineOptions& o, Backend& backend) {
  std::vector<std::unique_ptr<ModelInstance>> out;
  std::set<std::string> names;
  if (o.model_dirs.empty()) {
    auto mi = std::make_unique<ModelInstance>();
    mi->tokenizer = make_embedded_tokenizer();
    if (!mi->tokenizer) return Error::make(ErrorCode::kInternal, "the embedded tokenizer is not available");
    mi->model = make_embedded_model(mi->tokenizer->vocab_size(), mi->tokenizer->bos_id(), mi->tokenizer->eos_ids());
    mi->name = mi->model->name;
    names.insert(mi->name);
    out.push_back(std::move(mi));
  }
  for (const auto& dir : o.model_dirs) {
    auto mi = std::make_unique<ModelInstance>();
    auto model = o.random_weights ? random_weights_model(dir, o, backend) : load_model(dir);
    if (!model) return model.error();
    mi->model = *model;
    auto tok = load_tokenizer(dir, o.chat_template);
    if (tok) {
      mi->tokenizer = *tok;
    } else if (o.random_weights && tok.error().code == ErrorCode::kNotFound &&
               !fs::exists(fs::path(dir) / "tokenizer.json") && embedded_tokenizer_fits(mi->model->config)) {
      // Random weights know no vocabulary: text goes through Aurora's byte-level tokenizer, whose ids
      // are valid for any model with at least as many tokens; the ids above it decode to words
      // " t<id>", so whatever a random model samples streams text.
      std::fprintf(stderr,
                   "aurora: %s has no tokenizer.json; random weights use the byte-level tokenizer (ids >= 261 "
                   "decode to \" t<id>\")\n",
                   dir.c_str());
      mi->tokenizer = make_full_vocab_byte_tokenizer(mi->model->config.vocab_size);
    } else if (tok.error().code == ErrorCode::kNotFound && !fs::exists(fs::path(dir) / "tokenizer.json")) {
      std::fprintf(stderr, "aurora: %s has no tokenizer.json; requests must carry token ids and get no text\n",
                   dir.c_str());
      const auto& c = mi->model->config;
      mi->tokenizer = make_null_tokenizer(mi->model->name, c.vocab_size, c.bos_token_id, mi->model->eos_token_ids());
    } else {
      return tok.error();
    }
    mi->name = mi->model->name;
    for (int i = 2; names.count(mi->name); ++i) mi->name = mi->model->name + "-" + std::to_string(i);
    names.insert(mi->name);
    out.push_back(std::move(mi));
  }
  auto built = build_all(out, o, backend);
  if (!built) return built.error();
  return out;
}

}  // namespace aurora::runtime
