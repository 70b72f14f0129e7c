#include "cuda_runner.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/elementwise.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"
#include "aurora/kernels/cuda/sampling.hpp"
#include "cuda_ep_state.hpp"
#include "cuda_runner_buffers.hpp"
#include "kv/block_allocator.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

namespace {

constexpr size_t kGemmWorkspaceBytes = size_t{32} << 20;
// Split-k GEMV scratch (kernels/cuda/gemv.hpp): a split launch has fewer base blocks than the GPU
// holds (~1000), each with at most 2 x 256 partial floats per split.
constexpr int64_t kSplitWorkspaceFloats = int64_t{4} << 20;
constexpr int32_t kSplitTickets = 8192;

// Small decode batches fold the RMSNorms into their consumers (the qkv GEMV's prologue, the
// router) and spread the MoE combine over many blocks: two launches fewer per layer.
// AURORA_FUSED_NORM=0 turns it off (to compare).
bool fused_norm_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_FUSED_NORM");
    return !(v && v[0] == '0');
  }();
  return on;
}

// Whether a fused expert FFN also runs the MoE combine (kc::ExpertFfnCudaParams::combine) instead
// of a combine launch after it: on unless AURORA_FUSED_COMBINE=0.
bool fused_combine_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("AURORA_FUSED_COMBINE");
    return !(v && v[0] == '0');
  }();
  return on;
}

std::string gib(int64_t bytes) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << double(bytes) / double(int64_t{1} << 30) << " GiB";
  return s.str();
}

std::atomic<int> g_expert_cublaslt_override{-1};  // set_expert_cublaslt; -1: AURORA_EXPERT_CUBLASLT

}  // namespace

// Prefill's routed experts (steps of more than kGemvMaxTokens tokens) run on the tiled grouped GEMM
// (wgmma), sync-free: measured as fast as cuBLASLt per expert on three streams for Mixtral's 8
// experts, where the mma.sync kernel before it was slower (H200, 2026-11-29, 512-token prefill:
// 43.0-43.4 vs 43.5-46.0 ms, mma.sync 68.2), and far faster for many small experts (OLMoE 8.5 vs
// 39.5 ms, Qwen3-30B-A3B 28.3 vs 146.7 on 2026-11-28). AURORA_EXPERT_CUBLASLT=1: cuBLASLt per expert.
bool expert_cublaslt() {
  if (const int forced = g_expert_cublaslt_override.load(std::memory_order_relaxed); forced >= 0) return forced == 1;
  static const bool on = [] {
    const char* v = std::getenv("AURORA_EXPERT_CUBLASLT");
    return v && v[0] == '1';
  }();
  return on;
}
void set_expert_cublaslt(bool on) { g_expert_cublaslt_override.store(on ? 1 : 0, std::memory_order_relaxed); }
void reset_expert_cublaslt() { g_expert_cublaslt_override.store(-1, std::memory_order_relaxed); }

int32_t expert_lanes_for(int32_t requested) {
  static const int32_t env = [] {
    const char* v = std::getenv("AURORA_EXPERT_LANES");
    return v ? std::atoi(v) : 0;
  }();
  const int32_t n = requested > 0 ? requested : env > 0 ? env : kDefaultExpertLanes;
  return std::clamp(n, 1, kMaxExpertLanes);
}

std::string CudaMemoryReport::to_string() const {
  std::ostringstream s;
  s << device_name << ", " << gib(total_bytes) << ": weights " << gib(weight_bytes) << " (bf16), activations "
    << gib(activation_bytes) << ", KV cache " << gib(kv_cache_bytes) << " = " << kv_blocks << " blocks of "
    << kv_block_size << " tokens (" << int64_t{kv_blocks} * kv_block_size << " tokens)";
  return s.str();
}

CudaModelRunner::EpBuffers CudaModelRunner::ep_buffers() const {
  const Buffers& b = *buf_;
  return EpBuffers{b.offsets, b.permuted, b.position, b.h16, b.expert_in16, b.gate_up, b.expert_out};
}

CudaModelRunner::CudaModelRunner(std::shared_ptr<const CudaWeights> weights, const CudaRunnerOptions& options)
    : weights_(std::move(weights)), options_(options) {
  const auto& c = weights_->config();
  kc::PagedAttentionCudaParams shape;
  shape.kv_dtype = kc::DType::kBF16;
  shape.out_dtype = kc::DType::kBF16;
  shape.head_dim = c.head_dim;
  shape.num_q_heads = c.num_heads;
  shape.num_kv_heads = c.num_kv_heads;
  prefill_tiles_ = kc::prefill_attention_enabled() && kc::prefill_attention_supports(shape);
}

CudaModelRunner::~CudaModelRunner() {
  cudaSetDevice(weights_->device());
  ep_.reset();
  timeline_.reset();
  for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(exec);
  for (cudaEvent_t e : profile_events_) cudaEventDestroy(e);
  for (ExpertLane& l : lanes_) {
    if (l.stream) cudaStreamDestroy(l.stream);
    if (l.done) cudaEventDestroy(l.done);
  }
  lanes_.clear();
  if (lanes_fork_) cudaEventDestroy(lanes_fork_);
  buf_.reset();
  gemm_.reset();
  if (stream_ && stream_ != options_.stream) cudaStreamDestroy(stream_);
}

Result<std::unique_ptr<CudaModelRunner>> CudaModelRunner::create(std::shared_ptr<const CudaWeights> weights,
                                                                 const CudaRunnerOptions& options) {
  const auto& c = weights->config();
  if (options.max_tokens_per_step < 1 || options.max_seqs_per_step < 1 || options.kv_block_size < 1 ||
      options.max_context < 1) {
    return Error::invalid("cuda runner options", "token, sequence, block and context limits must be >= 1");
  }
  if (!(options.gpu_memory_fraction > 0.0 && options.gpu_memory_fraction <= 1.0)) {
    return Error::invalid("gpu_memory_fraction",
                          "must be in (0, 1], got " + std::to_string(options.gpu_memory_fraction));
  }
  if (c.num_experts > kc::kMaxRoutedExperts || c.num_experts_per_tok > kc::kMaxTopK ||
      c.num_heads / std::max(1, c.num_kv_heads) > kc::kAttentionMaxGroup || c.head_dim % 8 != 0 ||
      c.head_dim > kc::kAttentionMaxHeadDim || c.hidden_size % 8 != 0) {
    return Error::make(ErrorCode::kUnsupported,
                       "model " + weights->name() +
                           ": shape unsupported by the CUDA kernels (experts <= 1024, top-k <= 16, "
                           "query group <= 16, head_dim % 8 == 0 and <= 256, hidden % 8 == 0)");
  }
  std::unique_ptr<CudaModelRunner> r(new CudaModelRunner(std::move(weights), options));
  auto made = capture_errors([&] { r->allocate(); });
  if (!made) return made.error();
  return r;
}

void CudaModelRunner::allocate() {
  const auto& c = weights_->config();
  AURORA_CUDA_CHECK(cudaSetDevice(weights_->device()));
  if (options_.stream) {
    stream_ = options_.stream;
  } else {
    AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  buf_ = std::make_unique<Buffers>();
  Buffers& b = *buf_;
  const int64_t T = options_.max_tokens_per_step, S = options_.max_seqs_per_step;
  const int64_t H = c.hidden_size, V = c.vocab_size, E = c.num_experts, K = c.num_experts_per_tok;
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  const int64_t max_inter =
      std::max({c.moe_intermediate_size, c.dense_intermediate_size, c.shared_expert_intermediate_size});
  const int64_t items = T * std::max<int64_t>(K, 1);
  max_blocks_per_seq_ = blocks_for_tokens(options_.max_context, options_.kv_block_size);

  int64_t act = 0;
  b.off_ids = 0;
  b.off_pos = T;
  b.off_seq = 2 * T;
  b.off_slots = 3 * T;
  b.off_rows = 4 * T;
  b.off_count = 4 * T + S;
  b.off_tiles = 4 * T + S + 1;  // at most one partial tile per chunk beyond T / tile size full ones
  // Block tables last: a step copies only the rows it uses.
  b.off_sampling = (b.off_tiles + 2 * (T / kc::kPrefillTileTokens + S) + 3) / 4 * 4;
  b.off_tables = b.off_sampling + S * int64_t(sizeof(kernels::SamplingRow) / 4);
  b.in_words = b.off_tables + S * max_blocks_per_seq_;
  b.in_dev = b.alloc<int32_t>(b.in_words, act);
  AURORA_CUDA_CHECK(cudaMallocHost(&b.in_host, static_cast<size_t>(b.in_words) * 4));
  std::memset(b.in_host, 0, static_cast<size_t>(b.in_words) * 4);

  b.x = b.alloc<float>(T * H, act);
  b.h = b.alloc<float>(T * H, act);
  b.h16 = b.alloc<bf16>(T * H, act);
  b.qkv = b.alloc<float>(T * (q_dim + 2 * kv_dim), act);
  b.q = b.alloc<float>(T * q_dim, act);
  b.attn16 = b.alloc<bf16>(T * q_dim, act);
  b.router_logits = b.alloc<float>(T * E, act);
  b.topk_ids = b.alloc<int32_t>(items, act);
  b.topk_weights = b.alloc<float>(items, act);
  b.offsets = b.alloc<int32_t>(E + 1, act);
  b.permuted = b.alloc<int32_t>(items, act);
  b.position = b.alloc<int32_t>(items, act);
  b.active = b.alloc<int32_t>(E, act);
  b.num_active = b.alloc<int32_t>(1, act);
  b.ticket = b.alloc<int32_t>(kc::route_ticket_count(static_cast<int32_t>(T)), act);
  b.split_ws = b.alloc<float>(kSplitWorkspaceFloats, act);
  b.split_tickets = b.alloc<int32_t>(kSplitTickets, act);
  // Decode steps of <= kGemvNormMaxPositions tokens fuse their experts (kc::launch_expert_ffn), whose
  // counters live after the routing counts so that the step's one memset zeroes both.
  // One more word per layer: the router's logits_ready for the self-routed gate_up.
  b.ffn_counter_stride =
      (kc::expert_ffn_counters(static_cast<int32_t>(std::min<int64_t>(kc::kGemvNormMaxPositions * K, E)),
                               static_cast<int32_t>(H)) +
       2) /
      2 * 2;
  b.count_words = int64_t{c.num_layers} * (E + b.ffn_counter_stride / 2);
  b.expert_tokens = b.alloc<int64_t>(b.count_words, act);
  b.ffn_counters = reinterpret_cast<int32_t*>(b.expert_tokens + int64_t{c.num_layers} * E);
  b.act16 = b.alloc<bf16>(items * max_inter, act);
  b.expert_out = b.alloc<float>(items * H, act);
  b.shared_out = b.alloc<float>(T * H, act);
  b.shared_gate = b.alloc<float>(T, act);
  b.expert_in16 = b.alloc<bf16>(T * H, act);
  b.gate_up = b.alloc<float>(T * 2 * max_inter, act);
  b.logits = b.alloc<float>(S * V, act);
  b.tokens = b.alloc<int32_t>(S, act);
  b.attn_ws_bytes = kc::attention_workspace_bytes(static_cast<int32_t>(std::min<int64_t>(T, kAttentionTokensPerLaunch)),
                                                  c.num_heads, c.num_kv_heads, c.head_dim, options_.max_context);
  b.attn_ws = b.alloc<unsigned char>(static_cast<int64_t>(b.attn_ws_bytes), act);
  b.gemm_ws = b.alloc<unsigned char>(kGemmWorkspaceBytes, act);
  gemm_ = std::make_unique<kc::CublasLtRunner>(b.gemm_ws, kGemmWorkspaceBytes);
  // (Not on a caller's stream: it may be one of an SM-limited green context, which new streams would leave.)
  if (!options_.stream && expert_cublaslt() && E > 1 && T > kGemvMaxTokens) {
    const int32_t lanes = std::min<int32_t>(expert_lanes_for(options_.expert_lanes), static_cast<int32_t>(E));
    if (lanes > 1) AURORA_CUDA_CHECK(cudaEventCreateWithFlags(&lanes_fork_, cudaEventDisableTiming));
    for (int32_t l = 1; l < lanes; ++l) {
      ExpertLane& lane = lanes_.emplace_back();
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking));
      AURORA_CUDA_CHECK(cudaEventCreateWithFlags(&lane.done, cudaEventDisableTiming));
      lane.in16 = b.alloc<bf16>(T * H, act);
      lane.gate_up = b.alloc<float>(T * 2 * max_inter, act);
      lane.gemm =
          std::make_unique<kc::CublasLtRunner>(b.alloc<unsigned char>(kGemmWorkspaceBytes, act), kGemmWorkspaceBytes);
    }
  }
  AURORA_CUDA_CHECK(cudaMallocHost(&b.host_logits, static_cast<size_t>(S * V) * 4));
  AURORA_CUDA_CHECK(cudaMallocHost(&b.host_tokens, static_cast<size_t>(S) * 4));
  AURORA_CUDA_CHECK(cudaMallocHost(&b.host_counts, static_cast<size_t>(int64_t{c.num_layers} * E) * 8));
  AURORA_CUDA_CHECK(cudaMallocHost(&b.host_offsets, static_cast<size_t>(E + 1) * 4));

  // The KV cache: what the memory fraction leaves, or the requested number of tokens.
  cudaDeviceProp prop{};
  AURORA_CUDA_CHECK(cudaGetDeviceProperties(&prop, weights_->device()));
  size_t free_bytes = 0, total_bytes = 0;
  AURORA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const int64_t block_bytes = int64_t{c.num_layers} * 2 * options_.kv_block_size * kv_dim * 2;
  int64_t blocks = 0;
  if (options_.kv_cache_tokens > 0) {
    blocks = blocks_for_tokens(options_.kv_cache_tokens, options_.kv_block_size);
  } else {
    const int64_t used = static_cast<int64_t>(total_bytes - free_bytes);
    const int64_t budget = static_cast<int64_t>(options_.gpu_memory_fraction * double(total_bytes)) - used;
    blocks = std::max<int64_t>(0, budget / block_bytes);
  }
  blocks = std::min<int64_t>(blocks, (int64_t{1} << 31) / std::max(1, options_.kv_block_size) - 1);
  if (blocks < 1 || blocks * block_bytes > static_cast<int64_t>(free_bytes)) {
    throw_error(Error::make(ErrorCode::kResourceExhausted,
                            "cuda:" + std::to_string(weights_->device()) + ": no room for a KV cache (" +
                                std::to_string(free_bytes >> 20) + " MiB free after weights and activations)"));
  }
  AURORA_CUDA_CHECK(cudaMalloc(&b.kv_arena, static_cast<size_t>(blocks * block_bytes)));
  AURORA_CUDA_CHECK(cudaMemset(b.kv_arena, 0, static_cast<size_t>(blocks * block_bytes)));
  const int64_t layer_elems = blocks * options_.kv_block_size * kv_dim;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    b.k_cache.push_back(static_cast<bf16*>(b.kv_arena) + (2 * int64_t{l}) * layer_elems);
    b.v_cache.push_back(static_cast<bf16*>(b.kv_arena) + (2 * int64_t{l} + 1) * layer_elems);
  }
  memory_.device_name = "cuda:" + std::to_string(weights_->device()) + " (" + prop.name + ")";
  memory_.total_bytes = static_cast<int64_t>(total_bytes);
  memory_.weight_bytes = weights_->bytes();
  memory_.activation_bytes = act;
  memory_.kv_cache_bytes = blocks * block_bytes;
  memory_.kv_blocks = static_cast<int32_t>(blocks);
  memory_.kv_block_size = options_.kv_block_size;
  AURORA_CUDA_CHECK(cudaDeviceSynchronize());

  result_.routed_tokens.assign(static_cast<size_t>(c.num_layers), {});
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (c.layer_is_moe[static_cast<size_t>(l)])
      result_.routed_tokens[static_cast<size_t>(l)].assign(static_cast<size_t>(E), 0);
  }
  result_.exchange.assign(static_cast<size_t>(c.num_layers), LayerExchangeCost{});
}

int32_t CudaModelRunner::bucket_for(int32_t n) const {
  static constexpr std::array<int32_t, 12> kBuckets = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192};
  for (int32_t bucket : kBuckets) {
    if (bucket >= n) return std::min(bucket, options_.max_seqs_per_step);
  }
  return (n + 63) / 64 * 64 <= options_.max_seqs_per_step ? (n + 63) / 64 * 64 : options_.max_seqs_per_step;
}

int32_t CudaModelRunner::context_bucket(int32_t positions) const {
  int32_t bucket = 512;
  while (bucket < positions && bucket < options_.max_context) bucket *= 2;
  return std::min(bucket, options_.max_context);
}

void CudaModelRunner::set_split(kc::GroupedGemvParams& p) const {
  p.split_workspace = buf_->split_ws;
  p.split_workspace_floats = kSplitWorkspaceFloats;
  p.split_tickets = buf_->split_tickets;
  p.split_tickets_count = kSplitTickets;
}

void CudaModelRunner::norm_project(const float* norm_weight, const int32_t* rows, const bf16* w, int32_t n, float* y,
                                   int32_t positions) {
  kc::GroupedGemvParams p;
  p.norm_x = buf_->x;
  p.norm_weight = norm_weight;
  p.norm_eps = static_cast<float>(weights_->config().rms_norm_eps);
  p.x_rows = rows;
  p.weight = w;
  p.n = n;
  p.k = weights_->config().hidden_size;
  p.num_positions = positions;
  p.max_positions_per_group = positions;
  p.y_f32 = y;
  set_split(p);
  kc::launch_grouped_gemv(p, stream_);
}

void CudaModelRunner::project(const bf16* x, const bf16* w, int32_t n, int32_t k, float* y, int32_t rows,
                              bool accumulate) {
  if (rows <= kGemvMaxTokens) {
    kc::GroupedGemvParams p;
    p.x = x;
    p.weight = w;
    p.n = n;
    p.k = k;
    p.num_positions = rows;
    p.max_positions_per_group = rows;
    p.epilogue = accumulate ? kc::GemvEpilogue::kAccumulateF32 : kc::GemvEpilogue::kStoreF32;
    p.y_f32 = y;
    set_split(p);
    kc::launch_grouped_gemv(p, stream_);
    return;
  }
  kc::GemmParams g;
  g.x = x;
  g.w = w;
  g.y = y;
  g.m = rows;
  g.n = n;
  g.k = k;
  g.accumulate = accumulate;
  gemm_->gemm(g, stream_);
}

void CudaModelRunner::dense_ffn(const bf16* x, const CudaFfn& f, int32_t rows, float* out, bool accumulate) {
  const int32_t H = weights_->config().hidden_size, I = f.intermediate;
  Buffers& b = *buf_;
  if (rows <= kGemvMaxTokens) {
    kc::GroupedGemvParams p;
    p.x = x;
    p.weight = f.gate_up;
    p.n = I;
    p.k = H;
    p.num_positions = rows;
    p.max_positions_per_group = rows;
    p.epilogue = kc::GemvEpilogue::kSwiGluBF16;
    p.y_bf16 = b.act16;
    set_split(p);
    kc::launch_grouped_gemv(p, stream_);
  } else {
    project(x, f.gate_up, 2 * I, H, b.gate_up, rows, false);
    kc::launch_silu_mul(kc::SiluMulCudaParams{b.gate_up, 0, nullptr, b.act16, rows, I, 0}, stream_);
  }
  project(b.act16, f.down, H, I, out, rows, accumulate);
}

bool CudaModelRunner::routed_experts(int32_t layer, int32_t T, bool decode, const kc::MoeCombineCudaParams* combine,
                                     const int32_t* logits_ready) {
  const auto& c = weights_->config();
  const CudaLayer& L = weights_->layers[static_cast<size_t>(layer)];
  Buffers& b = *buf_;
  const int32_t H = c.hidden_size, I = c.moe_intermediate_size, E = c.num_experts, K = c.num_experts_per_tok;
  const int64_t gu_stride = int64_t{2} * I * H, down_stride = int64_t{H} * I;
  if (decode || T <= kGemvMaxTokens || !expert_cublaslt()) {
    kc::GroupedGemvParams g;
    g.x = b.h16;
    g.x_rows = b.permuted;
    g.x_row_div = K;
    g.weight = L.experts.gate_up;
    g.weight_group_stride = gu_stride;
    g.n = I;
    g.k = H;
    g.group_offsets = b.offsets;
    g.active_groups = b.active;
    g.num_active = b.num_active;
    g.num_group_slots = std::min(T * K, E);
    g.max_positions_per_group = T;
    g.max_total_positions = T * K;
    g.epilogue = kc::GemvEpilogue::kSwiGluBF16;
    g.y_bf16 = b.act16;
    set_split(g);
    const bool fused = kc::expert_ffn_for(T, I, options_.fused_ffn);
    if (logits_ready) g.self_route = {b.router_logits, logits_ready, T, E, K};  // the router's logits
    if (!fused) {
      kc::launch_grouped_gemv(g, stream_);
      mark(logits_ready ? "experts gate_up+silu (self-routed)" : "experts gate_up+silu");
    }
    kc::GroupedGemvParams d = g;
    d.self_route = {};  // (the down launch reads the router's permutation)
    d.x = b.act16;
    d.x_rows = nullptr;
    d.x_row_div = 1;
    d.weight = L.experts.down;
    d.weight_group_stride = down_stride;
    d.n = H;
    d.k = I;
    d.epilogue = kc::GemvEpilogue::kStoreF32;
    d.y_bf16 = nullptr;
    d.y_f32 = b.expert_out;
    d.groups_before_wait = true;  // the router ran two launches back
    if (fused) {                  // one launch: an expert's down tiles start when its gate_up tiles are done
      kc::ExpertFfnCudaParams f{g, d, b.ffn_counters + int64_t{layer} * b.ffn_counter_stride, {}};
      if (combine) f.combine = *combine;
      kc::launch_expert_ffn(f, stream_);
      mark(combine ? "experts gate_up+silu+down+combine (fused)" : "experts gate_up+silu+down (fused)");
      return combine != nullptr;
    }
    kc::launch_grouped_gemv(d, stream_);
    mark("experts down");
    return false;
  }
  // AURORA_EXPERT_CUBLASLT=1 (prefill only): one cuBLASLt GEMM pair per expert that received tokens.
  AURORA_CUDA_CHECK(
      cudaMemcpyAsync(b.host_offsets, b.offsets, static_cast<size_t>(E + 1) * 4, cudaMemcpyDeviceToHost, stream_));
  AURORA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  // Lane 0 is the runner's stream with its own scratch; the others start after what the stream holds.
  const int32_t lanes = 1 + static_cast<int32_t>(lanes_.size());
  if (lanes > 1) {
    AURORA_CUDA_CHECK(cudaEventRecord(lanes_fork_, stream_));
    for (ExpertLane& l : lanes_) AURORA_CUDA_CHECK(cudaStreamWaitEvent(l.stream, lanes_fork_, 0));
  }
  std::vector<int64_t> load(static_cast<size_t>(lanes), 0);
  for (int32_t e = 0; e < E; ++e) {
    const int32_t begin = b.host_offsets[e], count = b.host_offsets[e + 1] - begin;
    if (count == 0) continue;
    const auto l = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[l] += count;
    cudaStream_t s = l == 0 ? stream_ : lanes_[l - 1].stream;
    bf16* in16 = l == 0 ? b.expert_in16 : lanes_[l - 1].in16;
    float* gate_up = l == 0 ? b.gate_up : lanes_[l - 1].gate_up;
    kc::CublasLtRunner& gemm = l == 0 ? *gemm_ : *lanes_[l - 1].gemm;
    kc::launch_gather_rows_bf16(kc::GatherRowsBf16Params{b.h16, H, b.permuted + begin, K, in16, count, H}, s);
    kc::GemmParams g;
    g.x = in16;
    g.w = L.experts.gate_up + e * gu_stride;
    g.y = gate_up;
    g.m = count;
    g.n = 2 * I;
    g.k = H;
    gemm.gemm(g, s);
    kc::launch_silu_mul(kc::SiluMulCudaParams{gate_up, 0, nullptr, b.act16 + int64_t{begin} * I, count, I, 0}, s);
    kc::GemmParams d;
    d.x = b.act16 + int64_t{begin} * I;
    d.w = L.experts.down + e * down_stride;
    d.y = b.expert_out + int64_t{begin} * H;
    d.m = count;
    d.n = H;
    d.k = I;
    gemm.gemm(d, s);
  }
  for (ExpertLane& l : lanes_) {
    AURORA_CUDA_CHECK(cudaEventRecord(l.done, l.stream));
    AURORA_CUDA_CHECK(cudaStreamWaitEvent(stream_, l.done, 0));
  }
  mark("experts (cuBLASLt per expert)");
  return false;
}

void CudaModelRunner::forward(int32_t T, int32_t R, bool sample, bool decode) {
  const auto& c = weights_->config();
  const CudaWeights& W = *weights_;
  Buffers& b = *buf_;
  cudaStream_t s = stream_;
  const int32_t H = c.hidden_size, hd = c.head_dim;
  const int32_t q_dim = c.num_heads * hd, kv_dim = c.num_kv_heads * hd;
  const float eps = static_cast<float>(c.rms_norm_eps);
  // Expert parallelism too: a decode row's RMSNorms then sum in the same order on 1 and N GPUs (the
  // fused prologues and the separate norm kernel do not), so that both give the same bits.
  const bool fuse_norm = fused_norm_enabled() && T <= kc::kGemvNormMaxPositions;
  AURORA_CUDA_CHECK(cudaMemsetAsync(b.expert_tokens, 0, static_cast<size_t>(b.count_words) * sizeof(int64_t), s));
  mark("start");
  kc::launch_embedding(kc::EmbeddingCudaParams{b.ids(), W.embed_tokens, kc::DType::kBF16, b.x, T, H, c.vocab_size}, s);
  mark("embedding");
  bool h_ready = false;
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const CudaLayer& L = W.layers[static_cast<size_t>(l)];
    if (!h_ready && !fuse_norm) {
      kc::RmsNormCudaParams n;
      n.x = b.x;
      n.weight = L.input_norm;
      n.y_bf16 = b.h16;
      n.num_rows = T;
      n.dim = H;
      n.eps = eps;
      kc::launch_rms_norm(n, s);
      mark("input norm");
    }
    if (fuse_norm) {  // input RMSNorm in the GEMV's prologue
      norm_project(L.input_norm, nullptr, L.qkv, q_dim + 2 * kv_dim, b.qkv, T);
      mark("input norm + qkv");
    } else {
      project(b.h16, L.qkv, q_dim + 2 * kv_dim, H, b.qkv, T, false);
      mark("qkv");
    }
    attention(l, T, decode);
    project(b.attn16, L.o_proj, H, q_dim, b.x, T, true);  // residual: x += o_proj(attn)
    mark("o_proj");

    const bool norm_in_router = fuse_norm && L.is_moe;
    if (!norm_in_router) {
      kc::RmsNormCudaParams n;
      n.x = b.x;
      n.weight = L.post_attention_norm;
      n.y = L.is_moe ? b.h : nullptr;
      n.y_bf16 = b.h16;
      n.num_rows = T;
      n.dim = H;
      n.eps = eps;
      kc::launch_rms_norm(n, s);
      mark("post-attention norm");
    }
    if (!L.is_moe) {
      dense_ffn(b.h16, L.dense_mlp, T, b.x, true);
      mark("dense mlp");
      h_ready = false;
      continue;
    }
    kc::RouteCudaParams rp;
    rp.x = norm_in_router ? b.x : b.h;
    if (norm_in_router) {
      rp.norm_weight = L.post_attention_norm;
      rp.eps = eps;
      rp.norm_out = L.shared_expert.gate_up ? b.h : nullptr;  // the shared expert's gate reads it
      rp.norm_out_bf16 = b.h16;
    }
    rp.router = L.router;
    rp.logits = b.router_logits;
    rp.topk_ids = b.topk_ids;
    rp.topk_weights = b.topk_weights;
    rp.expert_offsets = b.offsets;
    rp.permuted_item = b.permuted;
    rp.item_position = b.position;
    rp.active_experts = b.active;
    rp.num_active = b.num_active;
    rp.expert_tokens = b.expert_tokens + int64_t{l} * c.num_experts;
    rp.num_counted_tokens = b.count();
    rp.ticket = b.ticket;
    rp.num_tokens = T;
    rp.hidden = H;
    rp.num_experts = c.num_experts;
    rp.top_k = c.num_experts_per_tok;
    rp.normalization = c.topk_norm == config::TopKNorm::kRenormalize ? kernels::TopKNormalization::kRenormalize
                                                                     : kernels::TopKNormalization::kNone;
    // The experts of a small step (fused or not) route their gate_up for themselves
    // (kc::GroupedGemvParams::self_route) from the logits, once every router block has counted
    // itself here.
    const bool self_route = !ep_ && T <= kc::kGemvNormMaxPositions && c.num_experts <= kc::kSelfRouteMaxExperts &&
                            kc::gemv_self_route_enabled();
    rp.logits_ready =
        self_route ? b.ffn_counters + int64_t{l} * b.ffn_counter_stride + b.ffn_counter_stride - 1 : nullptr;
    kc::launch_route(rp, s);
    mark("router + top-k + permute");
    const bool has_next = l + 1 < c.num_layers;
    kc::MoeCombineCudaParams mc;
    mc.expert_out = b.expert_out;
    mc.item_position = b.position;
    mc.topk_ids = b.topk_ids;
    mc.topk_weights = b.topk_weights;
    mc.shared_out = L.shared_expert.gate_up ? b.shared_out : nullptr;
    mc.shared_gate = L.shared_expert.gate_up ? b.shared_gate : nullptr;
    mc.x = b.x;
    const bool next_norm = has_next && !fuse_norm;  // fused: the next qkv GEMV normalises
    mc.norm_weight = next_norm ? W.layers[static_cast<size_t>(l) + 1].input_norm : nullptr;
    mc.eps = eps;
    mc.norm_out_bf16 = next_norm ? b.h16 : nullptr;
    mc.num_tokens = T;
    mc.top_k = c.num_experts_per_tok;
    mc.hidden = H;
    // The fused expert FFN may combine (no shared expert to add, no norm to apply).
    const bool combine_in_ffn = fused_combine_enabled() && !mc.shared_out && !mc.norm_weight;
    bool combined = false;
    if (ep_) {
      ep_moe_layer(l, T);
    } else {
      combined = routed_experts(l, T, decode, combine_in_ffn ? &mc : nullptr, rp.logits_ready);
    }
    if (L.shared_expert.gate_up) {
      dense_ffn(b.h16, L.shared_expert, T, b.shared_out, false);
      kernels::LinearParams g;
      g.x = b.h;
      g.weight = L.shared_expert_gate;
      g.y = b.shared_gate;
      g.num_rows = T;
      g.in_features = H;
      g.out_features = 1;
      kc::launch_linear_f32(g, s);
      mark("shared expert");
    }
    if (!combined) {
      kc::launch_moe_combine(mc, s);
      mark(next_norm ? "combine + next norm" : "combine");
    }
    h_ready = next_norm;
  }
  if (R == 0) return;
  if (fuse_norm && R <= kc::kGemvNormMaxPositions) {  // the final norm in the LM head's prologue
    norm_project(W.final_norm, b.rows(), W.lm_head, c.vocab_size, b.logits, R);
    mark("final norm + lm_head");
  } else {
    kc::RmsNormCudaParams fn;
    fn.x = b.x;
    fn.rows = b.rows();
    fn.weight = W.final_norm;
    fn.y_bf16 = b.h16;
    fn.num_rows = R;
    fn.dim = H;
    fn.eps = eps;
    kc::launch_rms_norm(fn, s);
    mark("final norm");
    project(b.h16, W.lm_head, c.vocab_size, H, b.logits, R, false);
    mark("lm_head");
  }
  if (sample) {
    kc::launch_sample(kernels::SampleParams{b.logits, b.sampling(), b.tokens, R, c.vocab_size, 0}, s);
    mark("sampling");
  }
}

const StepResult& CudaModelRunner::execute(const StepBatch& batch, const kernels::SamplingRow* sampling,
                                           int32_t* tokens) {
  const auto& c = weights_->config();
  Buffers& b = *buf_;
  AURORA_CUDA_CHECK(cudaSetDevice(weights_->device()));
  const int32_t bs = options_.kv_block_size, S = options_.max_seqs_per_step;
  const int32_t R = batch.num_logits_rows;
  AURORA_CHECK_MSG(R >= 0 && R <= S, "step wants " << R << " logits rows, the runner holds " << S);
  AURORA_CHECK_MSG(static_cast<int32_t>(batch.chunks.size()) <= S,
                   "step has " << batch.chunks.size() << " sequences, the runner holds " << S);
  AURORA_CHECK_MSG(!sampling || tokens, "sampling rows need a token output");
  int32_t* h = b.in_host;
  int32_t* ids = h + b.off_ids;
  int32_t* pos = h + b.off_pos;
  int32_t* seq = h + b.off_seq;
  int32_t* slots = h + b.off_slots;
  int32_t* rows = h + b.off_rows;
  int32_t* tables = h + b.off_tables;
  std::fill(rows, rows + S, -1);
  int32_t T = 0, positions = 1;
  bool decode = options_.use_cuda_graphs && !batch.chunks.empty();
  for (size_t ci = 0; ci < batch.chunks.size(); ++ci) {
    const SequenceChunk& ch = batch.chunks[ci];
    AURORA_CHECK_MSG(ch.rank == 0, "the CUDA runner is single-rank; chunk on rank " << ch.rank);
    AURORA_CHECK_MSG(ch.num_blocks <= max_blocks_per_seq_ &&
                         int64_t{ch.start_position} + ch.num_tokens <= int64_t{ch.num_blocks} * bs &&
                         ch.start_position + ch.num_tokens <= options_.max_context,
                     "block table of " << ch.num_blocks << " blocks cannot hold positions up to "
                                       << ch.start_position + ch.num_tokens);
    AURORA_CHECK_MSG(T + ch.num_tokens <= options_.max_tokens_per_step,
                     "step has more than " << options_.max_tokens_per_step << " tokens");
    int32_t* table = tables + static_cast<int64_t>(ci) * max_blocks_per_seq_;
    for (int32_t i = 0; i < ch.num_blocks; ++i) {
      AURORA_CHECK_MSG(ch.block_table[i] >= 0 && ch.block_table[i] < memory_.kv_blocks,
                       "KV block " << ch.block_table[i]);
      table[i] = ch.block_table[i];
    }
    for (int32_t t = 0; t < ch.num_tokens; ++t) {
      const int32_t p = ch.start_position + t;
      AURORA_CHECK_MSG(ch.tokens[t] >= 0 && ch.tokens[t] < c.vocab_size, "token id " << ch.tokens[t]);
      ids[T] = ch.tokens[t];
      pos[T] = p;
      positions = std::max(positions, p + 1);
      seq[T] = static_cast<int32_t>(ci);
      slots[T] = table[p / bs] * bs + p % bs;
      ++T;
    }
    if (ch.logits != LogitsMode::kNone && ch.num_tokens > 0) {
      const int32_t count = ch.logits == LogitsMode::kLast ? 1 : ch.num_tokens;
      AURORA_CHECK_MSG(ch.logits_row >= 0 && ch.logits_row + count <= R,
                       "logits rows [" << ch.logits_row << ", " << ch.logits_row + count << ") out of range");
      for (int32_t i = 0; i < count; ++i) rows[ch.logits_row + i] = T - count + i;
    }
    decode =
        decode && ch.num_tokens == 1 && ch.logits == LogitsMode::kLast && ch.logits_row == static_cast<int32_t>(ci);
  }
  for (int32_t r = 0; r < R; ++r) AURORA_CHECK_MSG(rows[r] >= 0, "logits row " << r << " is not written by any chunk");
  decode = decode && T == R && T <= kGemvMaxTokens;
  cut_prefill_tiles(batch, decode);
  result_.num_tokens = T;
  result_.num_logits_rows = R;
  result_.logits = nullptr;
  last_used_graph_ = false;
  if (T == 0) {
    if (ep_) ep_idle_step();  // the exchanges are collective: every rank takes part
    return result_;
  }

  auto* sampling_host = reinterpret_cast<kernels::SamplingRow*>(h + b.off_sampling);
  for (int32_t r = 0; r < R; ++r) sampling_host[r] = sampling ? sampling[r] : kernels::SamplingRow{};
  int32_t T_run = T, R_run = R;
  if (decode) {
    // Pad to the bucket: padded rows read block 0, write no KV and are not counted or returned.
    const int32_t B = bucket_for(T);
    for (int32_t i = T; i < B; ++i) {
      ids[i] = 0;
      pos[i] = 0;
      seq[i] = i;
      slots[i] = -1;
      rows[i] = i;
      tables[static_cast<int64_t>(i) * max_blocks_per_seq_] = 0;
      sampling_host[i] = kernels::SamplingRow{};
    }
    T_run = R_run = B;
  }
  // Attention grids cover the step's contexts: exactly for eager steps, a power-of-two bucket (>= 512)
  // for graphs, captured once per (batch bucket, context bucket).
  positions_bound_ = decode ? context_bucket(positions) : positions;
  h[b.off_count] = T;
  const int64_t table_rows = decode ? T_run : static_cast<int64_t>(batch.chunks.size());
  const int64_t words = b.off_tables + table_rows * max_blocks_per_seq_;
  AURORA_CUDA_CHECK(
      cudaMemcpyAsync(b.in_dev, b.in_host, static_cast<size_t>(words) * 4, cudaMemcpyHostToDevice, stream_));
  const bool sample = sampling != nullptr || decode;
  step_begin_hooks();
  if (decode) {
    const std::pair<int32_t, int32_t> key{T_run, positions_bound_};
    auto it = graphs_.find(key);
    if (it != graphs_.end()) {
      AURORA_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
      last_used_graph_ = true;
    } else {
      // First step of this bucket: run it for real, then capture it for the next ones.
      forward(T_run, R_run, sample, true);
      cudaGraph_t graph = nullptr;
      AURORA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      try {
        forward(T_run, R_run, sample, true);
      } catch (...) {
        cudaStreamEndCapture(stream_, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      AURORA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      cudaGraphExec_t exec = nullptr;
      AURORA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      AURORA_CUDA_CHECK(cudaGraphDestroy(graph));
      graphs_[key] = exec;
    }
  } else {
    forward(T_run, R_run, sample, false);
  }
  step_end_hooks();
  if (sampling) {
    AURORA_CUDA_CHECK(
        cudaMemcpyAsync(b.host_tokens, b.tokens, static_cast<size_t>(R) * 4, cudaMemcpyDeviceToHost, stream_));
  } else {
    AURORA_CUDA_CHECK(cudaMemcpyAsync(b.host_logits, b.logits, static_cast<size_t>(R) * c.vocab_size * 4,
                                      cudaMemcpyDeviceToHost, stream_));
  }
  AURORA_CUDA_CHECK(cudaMemcpyAsync(b.host_counts, b.expert_tokens,
                                    static_cast<size_t>(int64_t{c.num_layers} * c.num_experts) * 8,
                                    cudaMemcpyDeviceToHost, stream_));
  AURORA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (sampling) {
    std::copy(b.host_tokens, b.host_tokens + R, tokens);
  } else {
    result_.logits = b.host_logits;
  }
  // Routing statistics, and the bytes of weights this step had to read.
  int64_t bytes = weights_->lm_head_bytes();
  for (int32_t l = 0; l < c.num_layers; ++l) {
    bytes += weights_->attention_bytes(l);
    auto& counts = result_.routed_tokens[static_cast<size_t>(l)];
    if (counts.empty()) continue;
    for (int32_t e = 0; e < c.num_experts; ++e) {
      counts[static_cast<size_t>(e)] = b.host_counts[int64_t{l} * c.num_experts + e];
      if (counts[static_cast<size_t>(e)] > 0) bytes += weights_->expert_bytes();
    }
  }
  last_weight_bytes_ = bytes;
  return result_;
}

void CudaModelRunner::mark(const char* stage) {
  if (!profiling_) return;
  if (profile_used_ == profile_events_.size()) {
    cudaEvent_t e = nullptr;
    AURORA_CUDA_CHECK(cudaEventCreate(&e));
    profile_events_.push_back(e);
    profile_stages_.push_back(nullptr);
  }
  AURORA_CUDA_CHECK(cudaEventRecord(profile_events_[profile_used_], stream_));
  profile_stages_[profile_used_] = stage;
  ++profile_used_;
}

std::vector<std::pair<std::string, double>> CudaModelRunner::profile_step(const StepBatch& batch,
                                                                          const kernels::SamplingRow* sampling,
                                                                          int32_t* tokens) {
  const bool graphs = options_.use_cuda_graphs;
  options_.use_cuda_graphs = false;
  profiling_ = true;
  profile_used_ = 0;
  try {
    execute(batch, sampling, tokens);
  } catch (...) {
    profiling_ = false;
    options_.use_cuda_graphs = graphs;
    throw;
  }
  profiling_ = false;
  options_.use_cuda_graphs = graphs;
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 1; i < profile_used_; ++i) {
    float ms = 0;
    AURORA_CUDA_CHECK(cudaEventElapsedTime(&ms, profile_events_[i - 1], profile_events_[i]));
    const std::string stage = profile_stages_[i];
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == stage; });
    if (it == out.end()) {
      out.emplace_back(stage, ms);
    } else {
      it->second += ms;
    }
  }
  return out;
}

}  // namespace aurora::runtime::cuda
