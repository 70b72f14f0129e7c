#include "executor/model_executor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "aurora/config/check.hpp"
#include "executor/rank_state.hpp"
#include "kv/block_allocator.hpp"

namespace aurora::runtime {

ModelExecutor::ModelExecutor(std::shared_ptr<const Model> model, const ExecutorOptions& options, Backend& backend,
                             const ExchangePlannerFactory& planners)
    : model_(std::move(model)), options_(options), backend_(backend) {
  const auto& c = model_->config;
  const int32_t n = options_.num_ranks;
  AURORA_CHECK(n >= 1 && options_.max_tokens_per_step >= 1 && options_.kv_block_size >= 1);
  comm_ = make_loopback_communicator(n);
  pool_ = std::make_unique<RankPool>(n);
  placement_ = contiguous_placement(c.layer_is_moe, c.num_experts, n);
  max_blocks_per_seq_ = blocks_for_tokens(options_.max_context, options_.kv_block_size);

  const int64_t T = options_.max_tokens_per_step;
  const int64_t H = c.hidden_size, K = c.num_experts_per_tok, E = c.num_experts;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  const int64_t max_inter =
      std::max({c.moe_intermediate_size, c.dense_intermediate_size, c.shared_expert_intermediate_size});
  const int64_t kv_floats = int64_t{options_.kv_blocks_per_rank} * options_.kv_block_size * kv_dim;
  const int64_t rows = T * K;
  auto floats = [&](int64_t count) {
    return DeviceBuffer(backend_, static_cast<size_t>(std::max<int64_t>(count, 1)) * 4);
  };
  for (int32_t r = 0; r < n; ++r) {
    auto rs = std::make_unique<RankState>();
    rs->rank = r;
    rs->stream = backend_.create_stream();
    rs->planner = planners();
    for (int32_t l = 0; l < c.num_layers; ++l) {
      rs->k_cache.push_back(floats(kv_floats));
      rs->v_cache.push_back(floats(kv_floats));
    }
    rs->h_ids.reserve(static_cast<size_t>(T));
    rs->h_pos.reserve(static_cast<size_t>(T));
    rs->h_seq.reserve(static_cast<size_t>(T));
    rs->h_slots.reserve(static_cast<size_t>(T));
    rs->h_tables.assign(static_cast<size_t>(options_.max_seqs_per_step) * max_blocks_per_seq_, 0);
    rs->ids = floats(T);
    rs->pos = floats(T);
    rs->seq = floats(T);
    rs->slots = floats(T);
    rs->tables = floats(int64_t{options_.max_seqs_per_step} * max_blocks_per_seq_);
    rs->x = floats(T * H);
    rs->h = floats(T * H);
    rs->q = floats(T * q_dim);
    rs->k = floats(T * kv_dim);
    rs->v = floats(T * kv_dim);
    rs->attn = floats(T * q_dim);
    rs->tmp = floats(T * H);
    rs->moe_out = floats(T * H);
    rs->router_logits = floats(T * E);
    rs->gate_logits = floats(T);
    rs->topk_ids = floats(rows);
    rs->topk_weights = floats(rows);
    rs->keys = floats(rows);
    rs->key_offsets = floats(E + 1);
    rs->permuted = floats(rows);
    rs->position = floats(rows);
    rs->ffn_workspace =
        floats(kernels::cpu::swiglu_workspace_floats(static_cast<int32_t>(T), static_cast<int32_t>(max_inter)));
    rs->attn_workspace = floats(options_.max_context);
    rs->dispatch_send = floats(rows * (H + 1));
    rs->dispatch_recv = floats(rows * (H + 1));
    rs->expert_in = floats(rows * H);
    rs->expert_out = floats(rows * H);
    rs->combine_send = floats(rows * H);
    rs->combine_recv = floats(rows * H);
    rs->local_keys = floats(rows);
    rs->local_offsets = floats(E + 1);
    rs->local_perm = floats(rows);
    rs->local_pos = floats(rows);
    rs->send_rows.assign(static_cast<size_t>(n), 0);
    rs->all_rows.assign(static_cast<size_t>(n) * n, 0);
    rs->send_offsets.assign(static_cast<size_t>(n) + 1, 0);
    rs->recv_offsets.assign(static_cast<size_t>(n) + 1, 0);
    rs->combine_send_offsets.assign(static_cast<size_t>(n) + 1, 0);
    rs->combine_recv_offsets.assign(static_cast<size_t>(n) + 1, 0);
    rs->count_seconds.assign(static_cast<size_t>(c.num_layers), 0.0);
    rs->exchange_seconds.assign(static_cast<size_t>(c.num_layers), 0.0);
    rs->traffic.num_ranks = n;
    rs->traffic.bytes.assign(static_cast<size_t>(n) * n, 0);
    ranks_.push_back(std::move(rs));
  }
  logits_ = floats(int64_t{options_.max_logits_rows} * c.vocab_size);
  result_.routed_tokens.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (c.layer_is_moe[static_cast<size_t>(l)])
      result_.routed_tokens[static_cast<size_t>(l)].assign(static_cast<size_t>(n * E), 0);
  }
  result_.exchange.resize(static_cast<size_t>(c.num_layers));
  result_.rank_timing.resize(static_cast<size_t>(n));
  expert_weights_.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l)
    expert_weights_[static_cast<size_t>(l)] = model_->layers[static_cast<size_t>(l)].experts;
  orders_.resize(static_cast<size_t>(c.num_layers));
}

ModelExecutor::~ModelExecutor() = default;

void ModelExecutor::set_order_templates(int32_t layer, std::shared_ptr<const OrderTemplate> dispatch,
                                        std::shared_ptr<const OrderTemplate> combine, bool use_window) {
  AURORA_CHECK(layer >= 0 && layer < static_cast<int32_t>(orders_.size()));
  AURORA_CHECK((dispatch == nullptr) == (combine == nullptr));
  AURORA_CHECK(!dispatch || (dispatch->num_ranks == options_.num_ranks && combine->num_ranks == options_.num_ranks));
  const bool window = use_window && dispatch != nullptr;
  orders_[static_cast<size_t>(layer)] = LayerOrder{std::move(dispatch), std::move(combine), window};
}

bool ModelExecutor::has_order_template(int32_t layer) const {
  return orders_[static_cast<size_t>(layer)].dispatch != nullptr;
}

FfnWeights ModelExecutor::expert_weights(int32_t layer, int32_t expert) const {
  std::lock_guard lock(weights_mu_);
  return expert_weights_[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
}

int64_t ModelExecutor::switch_layer(int32_t layer, LayerPlacement lp, const std::vector<FfnWeights>& weights) {
  const auto& c = model_->config;
  AURORA_CHECK(layer >= 0 && layer < c.num_layers && c.layer_is_moe[static_cast<size_t>(layer)]);
  AURORA_CHECK(lp.owner.size() == static_cast<size_t>(c.num_experts) &&
               weights.size() == static_cast<size_t>(c.num_experts));
  AURORA_CHECK(lp.rank_experts.size() == static_cast<size_t>(options_.num_ranks));
  auto& current = placement_.layers[static_cast<size_t>(layer)];
  int64_t moved = 0;
  for (size_t e = 0; e < lp.owner.size(); ++e) moved += lp.owner[e] != current.owner[e];
  {
    std::lock_guard lock(weights_mu_);
    expert_weights_[static_cast<size_t>(layer)] = weights;
  }
  current = std::move(lp);
  orders_[static_cast<size_t>(layer)] = LayerOrder{};  // planned for the old placement's traffic
  return moved;
}

int64_t ModelExecutor::set_placement(ExpertPlacement placement) {
  AURORA_CHECK(placement.num_ranks == options_.num_ranks && placement.num_experts == model_->config.num_experts);
  AURORA_CHECK(placement.layers.size() == model_->layers.size());
  const int64_t moved = count_migrations(placement_, placement);
  placement_ = std::move(placement);
  return moved;
}

const StepResult& ModelExecutor::execute(const StepBatch& batch) {
  const auto& c = model_->config;
  AURORA_CHECK_MSG(
      batch.num_logits_rows <= options_.max_logits_rows,
      "step wants " << batch.num_logits_rows << " logits rows, the executor holds " << options_.max_logits_rows);
  for (auto& counts : result_.routed_tokens) std::fill(counts.begin(), counts.end(), 0);
  std::fill(result_.exchange.begin(), result_.exchange.end(), LayerExchangeCost{});
  std::fill(result_.rank_timing.begin(), result_.rank_timing.end(), RankStepTiming{});
  result_.logits = logits_.as<float>();
  result_.num_logits_rows = batch.num_logits_rows;
  int64_t total = 0;
  for (const auto& chunk : batch.chunks) {
    AURORA_CHECK_MSG(chunk.rank >= 0 && chunk.rank < options_.num_ranks, "chunk on rank " << chunk.rank);
    total += chunk.num_tokens;
  }
  AURORA_CHECK_MSG(total <= options_.max_tokens_per_step,
                   "step has " << total << " tokens, the executor holds " << options_.max_tokens_per_step);
  result_.num_tokens = total;
  std::function<void(int32_t)> fn = [&](int32_t rank) { run_rank(rank, batch); };
  std::function<void()> on_failure = [&] { comm_->abort(); };
  try {
    pool_->run(fn, on_failure);
  } catch (...) {
    comm_ = make_loopback_communicator(options_.num_ranks);  // the aborted one is unusable
    throw;
  }
  // A collective's own duration is what its last-arriving rank spends in it: the minimum over
  // ranks (the others also wait for the slowest rank's compute).
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (!c.layer_is_moe[static_cast<size_t>(l)]) continue;
    auto& cost = result_.exchange[static_cast<size_t>(l)];
    for (const auto& rs : ranks_) {
      cost.count_seconds = std::min(cost.count_seconds, rs->count_seconds[static_cast<size_t>(l)]);
      cost.measured_seconds = std::min(cost.measured_seconds, rs->exchange_seconds[static_cast<size_t>(l)]);
    }
  }
  return result_;
}

void ModelExecutor::run_rank(int32_t r, const StepBatch& batch) {
  const auto& c = model_->config;
  RankState& rs = *ranks_[static_cast<size_t>(r)];
  const int32_t bs = options_.kv_block_size;
  rs.h_ids.clear();
  rs.h_pos.clear();
  rs.h_seq.clear();
  rs.h_slots.clear();
  int32_t seq_row = 0;
  for (const auto& chunk : batch.chunks) {
    if (chunk.rank != r) continue;
    AURORA_CHECK_MSG(seq_row < options_.max_seqs_per_step, "too many sequences on rank " << r);
    AURORA_CHECK_MSG(chunk.num_blocks <= max_blocks_per_seq_ &&
                         int64_t{chunk.start_position} + chunk.num_tokens <= int64_t{chunk.num_blocks} * bs,
                     "block table of " << chunk.num_blocks << " blocks cannot hold positions up to "
                                       << chunk.start_position + chunk.num_tokens);
    AURORA_CHECK_MSG(static_cast<int64_t>(rs.h_ids.size()) + chunk.num_tokens <= options_.max_tokens_per_step,
                     "rank overflow");
    int32_t* table = rs.h_tables.data() + int64_t{seq_row} * max_blocks_per_seq_;
    std::copy(chunk.block_table, chunk.block_table + chunk.num_blocks, table);
    for (int32_t t = 0; t < chunk.num_tokens; ++t) {
      const int32_t p = chunk.start_position + t;
      AURORA_CHECK_MSG(chunk.tokens[t] >= 0 && chunk.tokens[t] < c.vocab_size, "token id " << chunk.tokens[t]);
      rs.h_ids.push_back(chunk.tokens[t]);
      rs.h_pos.push_back(p);
      rs.h_seq.push_back(seq_row);
      rs.h_slots.push_back(table[p / bs] * bs + p % bs);
    }
    ++seq_row;
  }
  const int32_t T = static_cast<int32_t>(rs.h_ids.size());
  rs.num_tokens = T;
  Stream& s = *rs.stream;
  if (T > 0) {
    backend_.copy(rs.ids.get(), rs.h_ids.data(), rs.h_ids.size() * 4, s);
    backend_.copy(rs.pos.get(), rs.h_pos.data(), rs.h_pos.size() * 4, s);
    backend_.copy(rs.seq.get(), rs.h_seq.data(), rs.h_seq.size() * 4, s);
    backend_.copy(rs.slots.get(), rs.h_slots.data(), rs.h_slots.size() * 4, s);
    backend_.copy(rs.tables.get(), rs.h_tables.data(), size_t(seq_row) * max_blocks_per_seq_ * 4, s);
    backend_.embedding(kernels::EmbeddingParams{ptr_of<int32_t>(rs.ids), model_->embed_tokens, ptr_of<float>(rs.x), T,
                                                c.hidden_size, c.vocab_size},
                       s);
  }
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (T > 0) attention_block(rs, l, T);
    if (model_->layers[static_cast<size_t>(l)].is_moe) {
      moe_block(rs, l, T);  // collective: every rank takes part, with or without tokens
    } else if (T > 0) {
      mlp_block(rs, l, T);
    }
  }
  if (T > 0) compute_logits(rs, batch);
  backend_.synchronize(s);
}

void ModelExecutor::attention_block(RankState& rs, int32_t layer, int32_t T) {
  const auto& c = model_->config;
  const LayerWeights& L = model_->layers[static_cast<size_t>(layer)];
  Stream& s = *rs.stream;
  const int32_t H = c.hidden_size, hd = c.head_dim;
  const int32_t q_dim = c.num_heads * hd, kv_dim = c.num_kv_heads * hd;
  float* x = ptr_of<float>(rs.x);
  float* h = ptr_of<float>(rs.h);
  backend_.rms_norm(kernels::RmsNormParams{x, L.input_norm, h, T, H, static_cast<float>(c.rms_norm_eps)}, s);
  auto project = [&](const float* w, const float* b, float* y, int32_t out) {
    kernels::LinearParams p;
    p.x = h;
    p.weight = w;
    p.bias = b;
    p.y = y;
    p.num_rows = T;
    p.in_features = H;
    p.out_features = out;
    backend_.linear(p, s);
  };
  float* q = ptr_of<float>(rs.q);
  float* k = ptr_of<float>(rs.k);
  float* v = ptr_of<float>(rs.v);
  project(L.q_proj, L.q_bias, q, q_dim);
  project(L.k_proj, L.k_bias, k, kv_dim);
  project(L.v_proj, L.v_bias, v, kv_dim);
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (c.qk_norm == config::QkNorm::kPerHead) {
    backend_.rms_norm(kernels::RmsNormParams{q, L.q_norm, q, T * c.num_heads, hd, eps}, s);
    backend_.rms_norm(kernels::RmsNormParams{k, L.k_norm, k, T * c.num_kv_heads, hd, eps}, s);
  } else if (c.qk_norm == config::QkNorm::kFull) {
    backend_.rms_norm(kernels::RmsNormParams{q, L.q_norm, q, T, q_dim, eps}, s);
    backend_.rms_norm(kernels::RmsNormParams{k, L.k_norm, k, T, kv_dim, eps}, s);
  }
  if (c.clip_qkv) {
    const float limit = static_cast<float>(*c.clip_qkv);
    backend_.clamp(kernels::ClampParams{q, int64_t{T} * q_dim, limit}, s);
    backend_.clamp(kernels::ClampParams{k, int64_t{T} * kv_dim, limit}, s);
    backend_.clamp(kernels::ClampParams{v, int64_t{T} * kv_dim, limit}, s);
  }
  backend_.rope(
      kernels::RopeParams{q, k, ptr_of<int32_t>(rs.pos), model_->inv_freq.data(), T, c.num_heads, c.num_kv_heads, hd},
      s);
  float* k_cache = ptr_of<float>(rs.k_cache[static_cast<size_t>(layer)]);
  float* v_cache = ptr_of<float>(rs.v_cache[static_cast<size_t>(layer)]);
  backend_.write_kv_cache(
      kernels::KvCacheWriteParams{k, v, k_cache, v_cache, ptr_of<int32_t>(rs.slots), T, c.num_kv_heads, hd}, s);
  kernels::PagedAttentionParams ap;
  ap.q = q;
  ap.out = ptr_of<float>(rs.attn);
  ap.k_cache = k_cache;
  ap.v_cache = v_cache;
  ap.block_tables = ptr_of<int32_t>(rs.tables);
  ap.token_seq = ptr_of<int32_t>(rs.seq);
  ap.token_pos = ptr_of<int32_t>(rs.pos);
  ap.num_tokens = T;
  ap.num_q_heads = c.num_heads;
  ap.num_kv_heads = c.num_kv_heads;
  ap.head_dim = hd;
  ap.block_size = options_.kv_block_size;
  ap.max_blocks_per_seq = max_blocks_per_seq_;
  ap.sliding_window = c.layer_sliding_window[static_cast<size_t>(layer)];
  ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  backend_.paged_attention(ap, ptr_of<float>(rs.attn_workspace), options_.max_context, s);
  kernels::LinearParams o;
  o.x = ptr_of<float>(rs.attn);
  o.weight = L.o_proj;
  o.y = x;  // residual: x += o_proj(attn)
  o.num_rows = T;
  o.in_features = q_dim;
  o.out_features = H;
  o.accumulate = true;
  backend_.linear(o, s);
}

void ModelExecutor::mlp_block(RankState& rs, int32_t layer, int32_t T) {
  const auto& c = model_->config;
  const LayerWeights& L = model_->layers[static_cast<size_t>(layer)];
  Stream& s = *rs.stream;
  float* x = ptr_of<float>(rs.x);
  float* h = ptr_of<float>(rs.h);
  float* out = ptr_of<float>(rs.tmp);
  backend_.rms_norm(
      kernels::RmsNormParams{x, L.post_attention_norm, h, T, c.hidden_size, static_cast<float>(c.rms_norm_eps)}, s);
  kernels::SwiGluFfnParams f;
  f.x = h;
  f.w_gate = L.dense_mlp.gate;
  f.w_up = L.dense_mlp.up;
  f.w_down = L.dense_mlp.down;
  f.y = out;
  f.num_rows = T;
  f.hidden = c.hidden_size;
  f.intermediate = L.dense_mlp.intermediate;
  backend_.swiglu_ffn(f, ptr_of<float>(rs.ffn_workspace), static_cast<int64_t>(rs.ffn_workspace.bytes() / 4), s);
  backend_.add(kernels::AddParams{x, out, int64_t{T} * c.hidden_size}, s);
}

void ModelExecutor::compute_logits(RankState& rs, const StepBatch& batch) {
  const auto& c = model_->config;
  Stream& s = *rs.stream;
  const int32_t H = c.hidden_size;
  int32_t token_base = 0;
  std::vector<int32_t>& rows = rs.h_slots;  // reuse: the slots were copied to the backend already
  for (const auto& chunk : batch.chunks) {
    if (chunk.rank != rs.rank) continue;
    const int32_t first = token_base;
    token_base += chunk.num_tokens;
    if (chunk.logits == LogitsMode::kNone || chunk.num_tokens == 0) continue;
    const int32_t count = chunk.logits == LogitsMode::kLast ? 1 : chunk.num_tokens;
    AURORA_CHECK_MSG(chunk.logits_row >= 0 && chunk.logits_row + count <= options_.max_logits_rows,
                     "logits rows [" << chunk.logits_row << ", " << chunk.logits_row + count << ") out of range");
    rows.clear();
    for (int32_t i = 0; i < count; ++i) rows.push_back(first + chunk.num_tokens - count + i);
    // The hidden rows to project, gathered into h (free at this point of the step).
    backend_.copy(ptr_of<int32_t>(rs.local_perm), rows.data(), rows.size() * 4, s);
    backend_.gather_rows(kernels::GatherRowsParams{ptr_of<float>(rs.x), ptr_of<int32_t>(rs.local_perm),
                                                   ptr_of<float>(rs.h), count, H, 0, 0},
                         s);
    backend_.rms_norm(kernels::RmsNormParams{ptr_of<float>(rs.h), model_->final_norm, ptr_of<float>(rs.h), count, H,
                                             static_cast<float>(c.rms_norm_eps)},
                      s);
    kernels::LinearParams p;
    p.x = ptr_of<float>(rs.h);
    p.weight = model_->lm_head;
    p.y = logits_.as<float>() + int64_t{chunk.logits_row} * c.vocab_size;
    p.num_rows = count;
    p.in_features = H;
    p.out_features = c.vocab_size;
    backend_.linear(p, s);
  }
}

}  // namespace aurora::runtime
