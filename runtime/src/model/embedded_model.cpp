#include "model/embedded_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "model/embedded_corpus.hpp"
#include "model/model_builder.hpp"

namespace aurora::runtime {

namespace {

// One dimension per byte and per special token (up to 32 of them), so that every token's
// embedding is orthogonal to every other's.
constexpr int32_t kHidden = 288;
constexpr int32_t kLayers = 4;
constexpr int32_t kExperts = 16;

config::ModelConfig embedded_config(int32_t vocab_size, std::optional<int32_t> bos_id,
                                    const std::vector<int32_t>& eos_ids) {
  config::ModelConfig c;
  c.architecture = config::ModelArchitecture::kEmbedded;
  c.model_type = "aurora_embedded";
  c.vocab_size = vocab_size;
  c.hidden_size = kHidden;
  c.num_layers = kLayers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 10000.0;
  c.num_experts = kExperts;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 128;
  c.topk_norm = config::TopKNorm::kRenormalize;
  c.layer_is_moe.assign(kLayers, true);
  c.layer_sliding_window.assign(kLayers, 0);
  c.bos_token_id = bos_id;
  c.eos_token_ids = eos_ids;
  c.torch_dtype = "float32";
  return c;
}

// Per layer, a permutation of the experts: class c gets experts perm[2c] and perm[2c + 1].
std::vector<int32_t> layer_permutation(int32_t layer, uint64_t seed) {
  Rng rng(seed * 7919 + static_cast<uint64_t>(layer) * 104729 + 1);
  std::vector<int32_t> perm(kExperts);
  std::iota(perm.begin(), perm.end(), 0);
  for (int32_t i = kExperts - 1; i > 0; --i)
    std::swap(perm[static_cast<size_t>(i)], perm[rng.below(static_cast<uint32_t>(i + 1))]);
  return perm;
}

// log P(next | current) from the corpus, add-beta smoothed towards the unigram distribution.
std::vector<float> bigram_log_probs(int32_t vocab, std::optional<int32_t> bos, const std::vector<int32_t>& eos) {
  const size_t V = static_cast<size_t>(vocab);
  std::vector<double> counts(V * V, 0.0), row_total(V, 0.0), unigram(V, 0.0);
  auto count = [&](int32_t a, int32_t b) {
    if (a < 0 || b < 0) return;
    counts[size_t(a) * V + size_t(b)] += 1.0;
    row_total[size_t(a)] += 1.0;
    unigram[size_t(b)] += 1.0;
  };
  const int32_t eos_id = eos.empty() ? -1 : eos.front();
  for (std::string_view doc : embedded_corpus()) {
    int32_t prev = bos ? *bos : -1;
    for (char ch : doc) {
      const int32_t cur = static_cast<unsigned char>(ch);
      count(prev, cur);
      prev = cur;
    }
    count(prev, eos_id);
  }
  double total = 0.0;
  for (double u : unigram) total += u;
  for (auto& u : unigram) u = (u + 1e-4) / (total + 1e-4 * double(V));
  constexpr double kBeta = 2.0;
  std::vector<float> logp(V * V);
  for (size_t a = 0; a < V; ++a) {
    for (size_t b = 0; b < V; ++b) {
      const double p = (counts[a * V + b] + kBeta * unigram[b]) / (row_total[a] + kBeta);
      logp[a * V + b] = static_cast<float>(std::max(-12.0, std::log(p)));
    }
  }
  return logp;
}

}  // namespace

int32_t embedded_byte_class(int32_t id) {
  if (id < 0 || id > 255) return 7;
  const char c = static_cast<char>(id);
  if (std::strchr("aeiou", c) && c) return 0;
  if (c >= 'a' && c <= 'z') return 1;
  if (c == ' ') return 2;
  if (c >= 'A' && c <= 'Z') return 3;
  if (c >= '0' && c <= '9') return 4;
  if (c && std::strchr("{}()[];=<>+-*/&|!~^%#@$\\_`\"", c)) return 5;
  if (c && std::strchr(".,':?\n\t", c)) return 6;
  return 7;
}

std::vector<int32_t> embedded_class_experts(int32_t layer, int32_t cls, uint64_t seed) {
  auto perm = layer_permutation(layer, seed);
  return {perm[static_cast<size_t>(2 * cls)], perm[static_cast<size_t>(2 * cls + 1)]};
}

std::shared_ptr<const Model> make_embedded_model(int32_t vocab_size, std::optional<int32_t> bos_id,
                                                 const std::vector<int32_t>& eos_ids, uint64_t seed) {
  ModelBuilder b(embedded_config(vocab_size, bos_id, eos_ids), seed, kEmbeddedModelName);
  const auto& c = b.model().config;
  const size_t H = kHidden, V = static_cast<size_t>(vocab_size);
  const size_t q_dim = size_t(c.num_heads) * c.head_dim, kv_dim = size_t(c.num_kv_heads) * c.head_dim;
  Model& m = b.model();

  // One-hot embeddings; tokens beyond the hidden size (none with the embedded tokenizer) get a
  // random unit vector.
  float* embed = b.zeros(V * H);
  for (size_t t = 0; t < V; ++t) {
    if (t < H) {
      embed[t * H + t] = 1.0f;
    } else {
      float norm = 0.0f;
      for (size_t i = 0; i < H; ++i) {
        embed[t * H + i] = b.rng().normal();
        norm += embed[t * H + i] * embed[t * H + i];
      }
      for (size_t i = 0; i < H; ++i) embed[t * H + i] /= std::sqrt(norm);
    }
  }
  m.embed_tokens = embed;
  m.final_norm = b.constant(H, 1.0f);

  // LM head: after the final norm the hidden state is ~sqrt(H) * embed(current token), so row v =
  // sum_u logP(v | u) embed(u) / sqrt(H) gives logits ~ the bigram log-probabilities.
  const auto logp = bigram_log_probs(vocab_size, bos_id, eos_ids);
  float* head = b.zeros(V * H);
  const float inv_sqrt_h = 1.0f / std::sqrt(float(H));
  for (size_t u = 0; u < V; ++u) {
    const float* e = embed + u * H;
    for (size_t v = 0; v < V; ++v) {
      const float w = logp[u * V + v] * inv_sqrt_h;
      for (size_t i = 0; i < H; ++i) head[v * H + i] += w * e[i];
    }
  }
  m.lm_head = head;

  for (int32_t l = 0; l < kLayers; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    L.is_moe = true;
    L.input_norm = b.constant(H, 1.0f);
    L.post_attention_norm = b.constant(H, 1.0f);
    // Attention and experts add small perturbations (~3-5% of the residual) on top of the bigram
    // signal: enough that every layer, expert and rank placement changes the bits, not the text.
    L.q_proj = b.normal(q_dim * H, 1.0f / std::sqrt(float(H)));
    L.k_proj = b.normal(kv_dim * H, 1.0f / std::sqrt(float(H)));
    L.v_proj = b.normal(kv_dim * H, 1.0f / std::sqrt(float(H)));
    L.o_proj = b.normal(H * q_dim, 0.002f / std::sqrt(float(q_dim)));
    // Structured router: class c's experts get a strong weight on every byte of the class.
    float* router = b.normal(size_t(kExperts) * H, 0.02f);
    const auto perm = layer_permutation(l, seed);
    for (int32_t t = 0; t < 256; ++t) {
      const int32_t cls = embedded_byte_class(t);
      for (int32_t j = 0; j < 2; ++j) router[size_t(perm[size_t(2 * cls + j)]) * H + size_t(t)] += 0.3f;
    }
    L.router = router;
    for (int32_t e = 0; e < kExperts; ++e) {
      FfnWeights w;
      w.gate = b.normal(size_t(c.moe_intermediate_size) * H, 1.0f / std::sqrt(float(H)));
      w.up = b.normal(size_t(c.moe_intermediate_size) * H, 1.0f / std::sqrt(float(H)));
      w.down = b.normal(H * size_t(c.moe_intermediate_size), 0.004f / std::sqrt(float(c.moe_intermediate_size)));
      w.intermediate = c.moe_intermediate_size;
      L.experts.push_back(w);
    }
  }
  auto model = b.finish();
  return std::move(model).value();
}

}  // namespace aurora::runtime
