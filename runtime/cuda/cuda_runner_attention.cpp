// The CUDA runner's attention block of a layer: the qkv prologue (bias, q/k norm, RoPE, KV write)
// and the attention launches (the tensor-core prefill kernel over the tiles of the step's prefill
// chunks, the decode kernels over every other token), and the host-side cut of chunks into tiles.
#include <cmath>
#include <span>
#include <utility>

#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"
#include "cuda_runner.hpp"
#include "cuda_runner_buffers.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

namespace {
constexpr int32_t kPrefillTileMinTokens = 8;  // chunks this long go to the tensor-core attention
}  // namespace

void CudaModelRunner::attention(int32_t l, int32_t T, bool decode) {
  const auto& c = weights_->config();
  const CudaWeights& W = *weights_;
  const CudaLayer& L = W.layers[static_cast<size_t>(l)];
  Buffers& b = *buf_;
  cudaStream_t s = stream_;
  const int32_t hd = c.head_dim, q_dim = c.num_heads * hd;
  const float eps = static_cast<float>(c.rms_norm_eps);
  kc::QkvPrologueParams qp;
  qp.qkv = b.qkv;
  qp.bias = L.qkv_bias;
  qp.qk_norm = c.qk_norm == config::QkNorm::kPerHead ? kc::QkNormMode::kPerHead
               : c.qk_norm == config::QkNorm::kFull  ? kc::QkNormMode::kFull
                                                     : kc::QkNormMode::kNone;
  qp.q_norm = L.q_norm;
  qp.k_norm = L.k_norm;
  qp.eps = eps;
  qp.clip = c.clip_qkv ? static_cast<float>(*c.clip_qkv) : 0.0f;
  qp.positions = b.pos();
  qp.inv_freq = W.inv_freq;
  qp.q_out = b.q;
  qp.k_cache = b.k_cache[static_cast<size_t>(l)];
  qp.v_cache = b.v_cache[static_cast<size_t>(l)];
  qp.kv_dtype = kc::DType::kBF16;
  qp.slot_mapping = b.slots();
  qp.num_tokens = T;
  qp.num_q_heads = c.num_heads;
  qp.num_kv_heads = c.num_kv_heads;
  qp.head_dim = hd;
  // Decode steps (one token per sequence): the prologue runs inside the attention kernel.
  const bool fold_prologue = decode && T <= kAttentionTokensPerLaunch && kc::attention_folds_prologue(T);
  if (!fold_prologue) {
    kc::launch_qkv_prologue(qp, s);
    mark("qkv prologue (norm, rope, kv write)");
  }
  kc::PagedAttentionCudaParams ap;
  ap.q = b.q;
  ap.out = b.attn16;
  ap.out_dtype = kc::DType::kBF16;
  ap.k_cache = b.k_cache[static_cast<size_t>(l)];
  ap.v_cache = b.v_cache[static_cast<size_t>(l)];
  ap.kv_dtype = kc::DType::kBF16;
  ap.block_tables = b.tables();
  ap.token_seq = b.seq();
  ap.token_pos = b.pos();
  ap.num_tokens = T;
  ap.num_q_heads = c.num_heads;
  ap.num_kv_heads = c.num_kv_heads;
  ap.head_dim = hd;
  ap.block_size = options_.kv_block_size;
  ap.max_blocks_per_seq = max_blocks_per_seq_;
  ap.sliding_window = c.layer_sliding_window[static_cast<size_t>(l)];
  ap.max_context = options_.max_context;
  ap.positions_bound = positions_bound_;
  ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  ap.fused_prologue = fold_prologue;
  ap.prologue = qp;
  // Prefill chunks: tensor-core tiles (execute() cut them); every other token: the decode kernels,
  // in launches of at most kAttentionTokensPerLaunch tokens (the workspace's bound).
  const bool tiled = !decode && num_prefill_tiles_ > 0;
  if (tiled) kc::launch_prefill_attention(ap, b.tiles(), num_prefill_tiles_, s);
  const std::pair<int32_t, int32_t> all{0, T};
  const std::span<const std::pair<int32_t, int32_t>> ranges =
      tiled ? std::span<const std::pair<int32_t, int32_t>>(untiled_ranges_) : std::span(&all, 1);
  for (const auto& [range_first, range_count] : ranges) {
    for (int32_t first = range_first; first < range_first + range_count; first += kAttentionTokensPerLaunch) {
      kc::PagedAttentionCudaParams part = ap;
      part.num_tokens = std::min(kAttentionTokensPerLaunch, range_first + range_count - first);
      part.q = b.q + int64_t{first} * q_dim;
      part.out = b.attn16 + int64_t{first} * q_dim;
      part.token_seq = b.seq() + first;
      part.token_pos = b.pos() + first;
      kc::launch_paged_attention(part, b.attn_ws, b.attn_ws_bytes, s);
    }
  }
  mark(fold_prologue ? "attention (+ qkv prologue)" : "attention");
}

void CudaModelRunner::cut_prefill_tiles(const StepBatch& batch, bool decode) {
  num_prefill_tiles_ = 0;
  untiled_ranges_.clear();
  if (decode || !prefill_tiles_) return;
  int32_t* tiles = buf_->in_host + buf_->off_tiles;
  int32_t first = 0;
  for (const SequenceChunk& ch : batch.chunks) {
    if (ch.num_tokens >= kPrefillTileMinTokens) {
      for (int32_t t = 0; t < ch.num_tokens; t += kc::kPrefillTileTokens) {
        tiles[2 * num_prefill_tiles_] = first + t;
        tiles[2 * num_prefill_tiles_ + 1] = std::min(kc::kPrefillTileTokens, ch.num_tokens - t);
        ++num_prefill_tiles_;
      }
    } else if (ch.num_tokens > 0) {
      if (!untiled_ranges_.empty() && untiled_ranges_.back().first + untiled_ranges_.back().second == first) {
        untiled_ranges_.back().second += ch.num_tokens;
      } else {
        untiled_ranges_.emplace_back(first, ch.num_tokens);
      }
    }
    first += ch.num_tokens;
  }
}

}  // namespace aurora::runtime::cuda
