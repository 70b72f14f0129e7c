#include "expert_parallel_group.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <sstream>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "cuda_weights.hpp"
#include "model/model.hpp"

namespace aurora::runtime::cuda {

struct ExpertParallelGroup::RankSplit {
  StepBatch batch;
  std::vector<kernels::SamplingRow> rows;
  std::vector<int32_t> tokens;
  std::vector<int32_t> global_row;  // local logits row -> row of the step
  const StepResult* result = nullptr;
  int64_t num_tokens = 0;
};

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

// Device memory a runner takes beside weights and KV cache: activations and exchange buffers
// (an upper estimate, so that the KV caches of colocated models leave room for both).
int64_t reserve_bytes(const config::ModelConfig& c, const CudaRunnerOptions& o, int32_t num_ranks) {
  const int64_t T = o.max_tokens_per_step, K = std::max(1, c.num_experts_per_tok), H = c.hidden_size;
  const int64_t I = std::max({c.moe_intermediate_size, c.dense_intermediate_size, c.shared_expert_intermediate_size});
  const int64_t items = T * K, recv = items * num_ranks;
  const int64_t activations = T * (H * 24 + int64_t{c.num_heads} * c.head_dim * 12 + c.num_experts * 4) +
                              items * (H * 4 + I * 2 + 16) + T * I * 8 +
                              int64_t{o.max_seqs_per_step} * c.vocab_size * 4;
  const int64_t exchange = items * H * 2 + recv * (H * 2 + I * 2 + H * 8 + 8);
  return activations + exchange + kGiB;
}

}  // namespace

Result<std::unique_ptr<ExpertParallelGroup>> ExpertParallelGroup::create(std::vector<EpGroupModel> models,
                                                                         const EpGroupOptions& options) {
  if (models.empty() || models.size() > 2) {
    return Error::invalid("models",
                          "expert parallelism serves 1 model, or 2 colocated, got " + std::to_string(models.size()));
  }
  if (options.devices.empty()) return Error::invalid("devices", "must not be empty");
  const int32_t n = static_cast<int32_t>(options.devices.size());
  std::unique_ptr<ExpertParallelGroup> g(new ExpertParallelGroup());
  g->options_ = options;
  g->models_ = std::move(models);
  const size_t M = g->models_.size();

  // Placement: the scheduler's deployment (colocated: both models' experts together).
  std::vector<ExpertPlacement> placements = options.placements;
  if (placements.empty()) {
    std::vector<const config::ModelConfig*> configs;
    for (const auto& m : g->models_) configs.push_back(&m.config);
    std::vector<RankSpec> ranks = options.rank_specs;
    if (ranks.empty()) ranks.assign(static_cast<size_t>(n), RankSpec{1.0, options.link_gbps});
    if (static_cast<int32_t>(ranks.size()) != n) {
      return Error::invalid("rank_specs", "must have one entry per GPU (" + std::to_string(n) + ")");
    }
    auto planned = plan_model_placements(configs, {}, ranks, M == 2);
    if (!planned) return planned.error();
    placements = std::move(*planned);
  }
  if (placements.size() != M) return Error::invalid("placements", "must have one entry per model");
  for (auto& p : placements) g->placements_.push_back(std::make_shared<const ExpertPlacement>(std::move(p)));

  auto built = capture_errors([&] {
    for (size_t m = 0; m < M; ++m) {
      NcclOptions nccl = options.nccl;
      nccl.label = options.nccl.label + ":" + g->models_[m].name;
      auto comm = NcclCommunicator::create_local(options.devices, nccl);
      if (!comm) throw_error(comm.error());
      g->comms_.push_back(std::move(*comm));
    }
    // Spare expert slots (online re-placement): auto = half the experts a rank holds, as memory allows.
    if (g->options_.expert_spare_slots < 0) {
      int64_t slot_bytes = 0;    // one spare slot in every MoE layer of every model
      int64_t weight_bytes = 0;  // a rank's weights without spares (estimate: bf16 matrices)
      int32_t want = 0;
      for (const auto& em : g->models_) {
        const auto& c = em.config;
        const int64_t H = c.hidden_size, q = int64_t{c.num_heads} * c.head_dim,
                      kv = int64_t{c.num_kv_heads} * c.head_dim;
        const int64_t expert = 2 * 3 * H * c.moe_intermediate_size;
        int32_t moe_layers = 0;
        for (bool moe : c.layer_is_moe) moe_layers += moe;
        slot_bytes += moe_layers * expert;
        weight_bytes += 2 * 2 * int64_t{c.vocab_size} * H + int64_t{c.num_layers} * 2 * ((q + 2 * kv) * H + H * q) +
                        int64_t{c.num_layers - moe_layers} * 2 * 3 * H * c.dense_intermediate_size +
                        int64_t{moe_layers} * ((c.num_experts + n - 1) / n) * expert;
        want = std::max(want, ((c.num_experts + n - 1) / n + 1) / 2);
      }
      int64_t free_min = std::numeric_limits<int64_t>::max();
      for (int dev : options.devices) {
        AURORA_CUDA_CHECK(cudaSetDevice(dev));
        size_t free_bytes = 0, total_bytes = 0;
        AURORA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        free_min = std::min(free_min, static_cast<int64_t>(free_bytes));
      }
      // At most a quarter of what the weights leave free (the rest is for the KV cache).
      const int64_t fit = slot_bytes > 0 ? std::max<int64_t>(0, free_min - weight_bytes) / 4 / slot_bytes : want;
      g->options_.expert_spare_slots = static_cast<int32_t>(std::min<int64_t>(want, fit));
      std::fprintf(
          stderr, "aurora: %d spare expert slots per MoE layer and GPU for online re-placement (%lld MiB each)\n",
          g->options_.expert_spare_slots, static_cast<long long>(g->options_.expert_spare_slots * slot_bytes >> 20));
    }
    // Weights first on every GPU (each rank holds its experts only), then the KV caches share
    // what is left.
    std::vector<std::vector<std::shared_ptr<const CudaWeights>>> weights(M);
    for (size_t m = 0; m < M; ++m) {
      const auto& em = g->models_[m];
      const ExpertPlacement& pl = *g->placements_[m];
      for (int32_t r = 0; r < n; ++r) {
        CudaWeights::HeldExperts held(static_cast<size_t>(em.config.num_layers));
        for (int32_t l = 0; l < em.config.num_layers; ++l) {
          if (em.config.layer_is_moe[static_cast<size_t>(l)]) {
            held[static_cast<size_t>(l)] = pl.layers[static_cast<size_t>(l)].rank_experts[static_cast<size_t>(r)];
          }
        }
        std::vector<int32_t> slots(static_cast<size_t>(em.config.num_layers), 0);
        for (int32_t l = 0; l < em.config.num_layers; ++l) {
          const int32_t h = static_cast<int32_t>(held[static_cast<size_t>(l)].size());
          if (em.config.layer_is_moe[static_cast<size_t>(l)])
            slots[static_cast<size_t>(l)] = std::min(em.config.num_experts, h + g->options_.expert_spare_slots);
        }
        const int dev = options.devices[static_cast<size_t>(r)];
        auto w = em.weights ? CudaWeights::upload(*em.weights, dev, held, slots)
                            : CudaWeights::random(em.config, em.seed, dev, em.name, held, slots);
        if (!w) throw_error(w.error());
        weights[m].push_back(std::move(*w));
      }
    }
    std::vector<int64_t> kv_tokens(M, options.runner.kv_cache_tokens);
    if (options.runner.kv_cache_tokens == 0) {
      for (size_t m = 0; m < M; ++m) kv_tokens[m] = int64_t{1} << 40;
      for (int32_t r = 0; r < n; ++r) {
        AURORA_CUDA_CHECK(cudaSetDevice(options.devices[static_cast<size_t>(r)]));
        size_t free_bytes = 0, total_bytes = 0;
        AURORA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        int64_t budget = static_cast<int64_t>(options.runner.gpu_memory_fraction * double(total_bytes)) -
                         static_cast<int64_t>(total_bytes - free_bytes);
        for (size_t m = 0; m < M; ++m) budget -= reserve_bytes(g->models_[m].config, options.runner, n);
        for (size_t m = 0; m < M; ++m) {
          const auto& c = g->models_[m].config;
          const int64_t per_token = int64_t{c.num_layers} * 2 * c.num_kv_heads * c.head_dim * 2;
          kv_tokens[m] = std::min(kv_tokens[m], std::max<int64_t>(budget / static_cast<int64_t>(M) / per_token,
                                                                  options.runner.kv_block_size));
        }
      }
    }
    if (M == 2) {
      for (int32_t r = 0; r < n; ++r) g->turns_.push_back(std::make_unique<ComputeTurns>(2));
    }
    g->runners_.resize(M);
    for (size_t m = 0; m < M; ++m) {
      CudaRunnerOptions ro = options.runner;
      ro.kv_cache_tokens = kv_tokens[m];
      for (int32_t r = 0; r < n; ++r) {
        ro.stream = m < options.compute_streams.size() && static_cast<size_t>(r) < options.compute_streams[m].size()
                        ? options.compute_streams[m][static_cast<size_t>(r)]
                        : nullptr;
        auto runner = CudaModelRunner::create(weights[m][static_cast<size_t>(r)], ro);
        if (!runner) throw_error(runner.error());
        ExpertParallelConfig ep;
        ep.rank = r;
        ep.comm = g->comms_[m].get();
        ep.placement = g->placements_[m];
        ep.planner = options.all_at_once ? make_all_at_once_planner(options.link_gbps)
                                         : make_aurora_planner(n, options.link_gbps, options.phase_latency_s);
        ep.turns = M == 2 ? g->turns_[static_cast<size_t>(r)].get() : nullptr;
        ep.turn_index = static_cast<int32_t>(m);
        ep.link_gbps = options.link_gbps;
        ep.phase_latency_s = options.phase_latency_s;
        if (auto ok = (*runner)->enable_expert_parallel(std::move(ep)); !ok) throw_error(ok.error());
        (*runner)->enable_timeline(options.timeline);
        g->runners_[m].push_back(std::move(*runner));
      }
    }
    for (int32_t r = 0; r < n; ++r) {
      AURORA_CUDA_CHECK(cudaSetDevice(options.devices[static_cast<size_t>(r)]));
      cudaStream_t s = nullptr;
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      g->mark_streams_.push_back(s);
      cudaEvent_t e = nullptr;
      AURORA_CUDA_CHECK(cudaEventCreate(&e));
      g->step_start_.push_back(e);
    }
  });
  if (!built) return built.error();
  g->pool_ = std::make_unique<RankPool>(static_cast<int32_t>(M) * n);
  g->splits_.assign(M, std::vector<RankSplit>(static_cast<size_t>(n)));
  g->results_.resize(M);
  g->logits_.resize(M);
  return g;
}

ExpertParallelGroup::~ExpertParallelGroup() {
  pool_.reset();
  runners_.clear();
  comms_.clear();
  for (size_t r = 0; r < step_start_.size(); ++r) {
    cudaSetDevice(options_.devices[r]);
    cudaEventDestroy(step_start_[r]);
    cudaStreamDestroy(mark_streams_[r]);
  }
}

int32_t ExpertParallelGroup::num_kv_blocks(int32_t model) const {
  int32_t blocks = std::numeric_limits<int32_t>::max();
  for (const auto& r : runners_[static_cast<size_t>(model)]) blocks = std::min(blocks, r->num_kv_blocks());
  return blocks;
}

std::string ExpertParallelGroup::memory_report(int32_t model) const {
  std::ostringstream s;
  const auto& rs = runners_[static_cast<size_t>(model)];
  for (size_t r = 0; r < rs.size(); ++r) s << (r ? "; " : "") << "rank " << r << ": " << rs[r]->memory().to_string();
  return s.str();
}

void ExpertParallelGroup::set_placement(int32_t model, std::shared_ptr<const ExpertPlacement> placement) {
  AURORA_CHECK(model >= 0 && model < num_models() && placement != nullptr);
  placements_[static_cast<size_t>(model)] = std::move(placement);
}

CudaModelRunner& ExpertParallelGroup::runner(int32_t model, int32_t rank) const {
  return *runners_[static_cast<size_t>(model)][static_cast<size_t>(rank)];
}

void ExpertParallelGroup::enable_timeline(bool on) {
  options_.timeline = on;
  for (auto& rs : runners_) {
    for (auto& r : rs) r->enable_timeline(on);
  }
}

void ExpertParallelGroup::run_rank(int32_t model, int32_t rank) {
  AURORA_CUDA_CHECK(cudaSetDevice(options_.devices[static_cast<size_t>(rank)]));
  RankSplit& split = splits_[static_cast<size_t>(model)][static_cast<size_t>(rank)];
  const GroupStep& step = steps_[static_cast<size_t>(model)];
  const bool sample = step.rows != nullptr;
  split.result =
      &runner(model, rank)
           .execute(split.batch, sample ? split.rows.data() : nullptr, sample ? split.tokens.data() : nullptr);
}

std::vector<const StepResult*> ExpertParallelGroup::execute(std::span<const GroupStep> steps) {
  AURORA_CHECK_MSG(!failed_, "the expert-parallel group failed in an earlier step (communicators aborted)");
  AURORA_CHECK_MSG(steps.size() == models_.size(), "one step per model: " << steps.size() << " for " << models_.size());
  const int32_t n = num_ranks();
  const size_t M = models_.size();
  steps_ = steps;
  // Each rank's share of the batch: its chunks (as rank 0 of its runner) and their logits rows.
  std::vector<std::vector<bool>> active(static_cast<size_t>(n), std::vector<bool>(M, false));
  for (size_t m = 0; m < M; ++m) {
    for (int32_t r = 0; r < n; ++r) {
      RankSplit& split = splits_[m][static_cast<size_t>(r)];
      split.batch.chunks.clear();
      split.rows.clear();
      split.global_row.clear();
      split.num_tokens = 0;
      split.result = nullptr;
    }
    const GroupStep& st = steps[m];
    if (!st.batch) continue;
    for (const SequenceChunk& ch : st.batch->chunks) {
      AURORA_CHECK_MSG(ch.rank >= 0 && ch.rank < n, "chunk on rank " << ch.rank << " of " << n);
      RankSplit& split = splits_[m][static_cast<size_t>(ch.rank)];
      SequenceChunk local = ch;
      local.rank = 0;
      if (ch.logits != LogitsMode::kNone && ch.num_tokens > 0) {
        const int32_t count = ch.logits == LogitsMode::kLast ? 1 : ch.num_tokens;
        local.logits_row = static_cast<int32_t>(split.global_row.size());
        for (int32_t i = 0; i < count; ++i) {
          split.global_row.push_back(ch.logits_row + i);
          if (st.rows) split.rows.push_back(st.rows[ch.logits_row + i]);
        }
      }
      split.batch.chunks.push_back(local);
      split.num_tokens += ch.num_tokens;
    }
    for (int32_t r = 0; r < n; ++r) {
      RankSplit& split = splits_[m][static_cast<size_t>(r)];
      split.batch.num_logits_rows = static_cast<int32_t>(split.global_row.size());
      split.tokens.assign(split.global_row.size(), 0);
      active[static_cast<size_t>(r)][m] = split.num_tokens > 0;
    }
  }
  for (int32_t r = 0; r < n; ++r) {
    if (M == 2) {
      turns_[static_cast<size_t>(r)]->begin_step(active[static_cast<size_t>(r)]);
      for (size_t m = 0; m < M; ++m)
        runner(static_cast<int32_t>(m), r).set_uses_turns(active[static_cast<size_t>(r)][m]);
    }
    AURORA_CUDA_CHECK(cudaSetDevice(options_.devices[static_cast<size_t>(r)]));
    AURORA_CUDA_CHECK(cudaEventRecord(step_start_[static_cast<size_t>(r)], mark_streams_[static_cast<size_t>(r)]));
  }
  std::function<void(int32_t)> fn = [&](int32_t i) {
    const int32_t m = i / n, r = i % n;
    if (steps_[static_cast<size_t>(m)].batch) run_rank(m, r);
  };
  std::function<void()> on_failure = [&] {
    failed_ = true;
    for (auto& t : turns_) t->abort();
    for (auto& c : comms_) c->abort();
  };
  pool_->run(fn, on_failure);

  std::vector<const StepResult*> out(M, nullptr);
  for (size_t m = 0; m < M; ++m) {
    const GroupStep& st = steps[m];
    if (!st.batch) continue;
    const auto& c = models_[m].config;
    StepResult& res = results_[m];
    res.num_tokens = 0;
    res.num_logits_rows = st.batch->num_logits_rows;
    res.logits = nullptr;
    res.routed_tokens.assign(static_cast<size_t>(c.num_layers), {});
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (c.layer_is_moe[static_cast<size_t>(l)])
        res.routed_tokens[static_cast<size_t>(l)].assign(static_cast<size_t>(n) * c.num_experts, 0);
    }
    if (!st.rows) logits_[m].assign(static_cast<size_t>(res.num_logits_rows) * c.vocab_size, 0.0f);
    for (int32_t r = 0; r < n; ++r) {
      const RankSplit& split = splits_[m][static_cast<size_t>(r)];
      res.num_tokens += split.num_tokens;
      if (split.num_tokens > 0) {
        for (int32_t l = 0; l < c.num_layers; ++l) {
          const auto& counts = split.result->routed_tokens[static_cast<size_t>(l)];
          auto& dst = res.routed_tokens[static_cast<size_t>(l)];
          for (size_t e = 0; e < counts.size(); ++e) dst[static_cast<size_t>(r) * c.num_experts + e] = counts[e];
        }
      }
      for (size_t i = 0; i < split.global_row.size(); ++i) {
        if (st.rows) {
          st.tokens[split.global_row[i]] = split.tokens[i];
        } else {
          std::copy(split.result->logits + i * static_cast<size_t>(c.vocab_size),
                    split.result->logits + (i + 1) * static_cast<size_t>(c.vocab_size),
                    logits_[m].begin() + static_cast<ptrdiff_t>(split.global_row[i]) * c.vocab_size);
        }
      }
    }
    if (!st.rows) res.logits = logits_[m].data();
    res.exchange = splits_[m][0].result->exchange;
    // Measured times: the events of the step that just ended (complete: execute synchronised).
    res.rank_timing.assign(static_cast<size_t>(n), RankStepTiming{});
    std::vector<double> layer_exchange;
    for (int32_t r = 0; r < n; ++r) {
      res.rank_timing[static_cast<size_t>(r)] = runner(static_cast<int32_t>(m), r).last_rank_timing(layer_exchange);
      for (size_t l = 0; l < res.exchange.size() && l < layer_exchange.size(); ++l) {
        if (!c.layer_is_moe[l]) continue;
        double& measured = res.exchange[l].measured_seconds;
        measured = r == 0 ? layer_exchange[l] : std::min(measured, layer_exchange[l]);
      }
    }
    out[m] = &res;
  }
  return out;
}

std::vector<GroupTimelineSpan> ExpertParallelGroup::last_timeline() const {
  std::vector<GroupTimelineSpan> out;
  for (size_t m = 0; m < runners_.size(); ++m) {
    for (size_t r = 0; r < runners_[m].size(); ++r) {
      for (const TimelineSpan& s : runners_[m][r]->collect_timeline(step_start_[r])) {
        out.push_back(GroupTimelineSpan{static_cast<int32_t>(r), static_cast<int32_t>(m), s});
      }
    }
  }
  return out;
}

}  // namespace aurora::runtime::cuda
