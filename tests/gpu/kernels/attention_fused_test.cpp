// Decode attention with the qkv prologue folded in against the prologue kernel followed by
// attention: the same output and KV-cache bits, for every cluster size; and the prologue kernel
// gives a token the same q and KV row alone as in a batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;

namespace {

struct FusedCase {
  kc::QkNormMode norm;
  bool bias;
  float clip;
  int32_t hq, hkv, hd;
};

}  // namespace

TEST_CASE("decode attention with the folded prologue matches prologue + attention bit for bit", "[gpu][attention]") {
  for (const FusedCase& c : {FusedCase{kc::QkNormMode::kPerHead, false, 0.0f, 32, 4, 128},
                             FusedCase{kc::QkNormMode::kFull, true, 0.0f, 16, 16, 128},
                             FusedCase{kc::QkNormMode::kNone, true, 2.5f, 32, 8, 128},
                             FusedCase{kc::QkNormMode::kPerHead, true, 0.0f, 8, 2, 64}}) {
    INFO("norm " << int(c.norm) << " heads " << c.hq << "/" << c.hkv << " head_dim " << c.hd);
    const int32_t q_dim = c.hq * c.hd, kv_dim = c.hkv * c.hd, width = q_dim + 2 * kv_dim;
    const int32_t block_size = 16, max_blocks = 80, seqs = 4, num_blocks = seqs * max_blocks;
    const int32_t max_context = max_blocks * block_size;
    // One token per sequence (a decode step); every table a slice of a shuffled pool.
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(21));
    const std::vector<int32_t> tables(pool.begin(), pool.end());
    const std::vector<int32_t> seq = {0, 1, 2, 3}, pos = {0, 37, 520, 1100};
    const int32_t tokens = int32_t(seq.size());
    std::vector<int32_t> slots(seq.size());
    for (size_t i = 0; i < seq.size(); ++i) {
      const int32_t* table = tables.data() + seq[i] * max_blocks;
      slots[i] = table[pos[i] / block_size] * block_size + pos[i] % block_size;
    }
    auto qkv = random_floats(size_t(tokens) * width, 90, 2.0f);
    auto bias = random_floats(size_t(width), 91, 0.5f);
    const bool full = c.norm == kc::QkNormMode::kFull;
    auto qn = random_floats(size_t(full ? q_dim : c.hd), 92, 0.5f, 1.5f);
    auto kn = random_floats(size_t(full ? kv_dim : c.hd), 93, 0.5f, 1.5f);
    std::vector<float> freq(size_t(c.hd / 2));
    for (int32_t i = 0; i < c.hd / 2; ++i) freq[size_t(i)] = std::pow(10000.0f, -2.0f * float(i) / float(c.hd));
    const auto cache_init = random_floats(size_t(num_blocks) * block_size * kv_dim, 94);
    DeviceArray<float> dqkv(qkv), dbias(bias), dqn(qn), dkn(kn), dfreq(freq), dq(size_t(tokens) * q_dim);
    DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos), dslots(slots);
    auto kcache = upload_bf16(cache_init), vcache = upload_bf16(cache_init);
    DeviceArray<uint16_t> out(size_t(tokens) * q_dim);
    const size_t ws_bytes = kc::attention_workspace_bytes(tokens, c.hq, c.hkv, c.hd, max_context);
    DeviceArray<unsigned char> workspace(ws_bytes);
    workspace.zero();

    kc::QkvPrologueParams qp;
    qp.qkv = dqkv.get();
    qp.bias = c.bias ? dbias.get() : nullptr;
    qp.qk_norm = c.norm;
    qp.q_norm = dqn.get();
    qp.k_norm = dkn.get();
    qp.clip = c.clip;
    qp.positions = dpos.get();
    qp.inv_freq = dfreq.get();
    qp.q_out = dq.get();
    qp.k_cache = kcache.get();
    qp.v_cache = vcache.get();
    qp.kv_dtype = kc::DType::kBF16;
    qp.slot_mapping = dslots.get();
    qp.num_tokens = tokens;
    qp.num_q_heads = c.hq;
    qp.num_kv_heads = c.hkv;
    qp.head_dim = c.hd;
    kc::PagedAttentionCudaParams ap;
    ap.q = dq.get();
    ap.out = out.get();
    ap.out_dtype = kc::DType::kBF16;
    ap.k_cache = kcache.get();
    ap.v_cache = vcache.get();
    ap.kv_dtype = kc::DType::kBF16;
    ap.block_tables = dtables.get();
    ap.token_seq = dseq.get();
    ap.token_pos = dpos.get();
    ap.num_tokens = tokens;
    ap.num_q_heads = c.hq;
    ap.num_kv_heads = c.hkv;
    ap.head_dim = c.hd;
    ap.block_size = block_size;
    ap.max_blocks_per_seq = max_blocks;
    ap.max_context = max_context;
    ap.scale = 1.0f / std::sqrt(float(c.hd));

    // The reference: the prologue kernel, then the cluster kernel (forced, sized by the grid).
    ap.cluster_blocks = -1;
    out.poison();
    kc::launch_qkv_prologue(qp, nullptr);
    kc::launch_paged_attention(ap, workspace.get(), ws_bytes, nullptr);
    const auto want_out = out.download(), want_k = kcache.download(), want_v = vcache.download();
    // The cluster kernel with the prologue folded in: sized by the grid (-1), or 1, 2, 16 blocks.
    for (int32_t blocks : {-1, 1, 2, 16}) {
      INFO("cluster blocks " << blocks);
      kcache.upload(to_bf16_bits(cache_init));
      vcache.upload(to_bf16_bits(cache_init));
      out.poison();
      kc::PagedAttentionCudaParams fp = ap;
      fp.fused_prologue = true;
      fp.prologue = qp;
      fp.cluster_blocks = blocks;
      kc::launch_paged_attention(fp, workspace.get(), ws_bytes, nullptr);
      CHECK(out.download() == want_out);
      CHECK(kcache.download() == want_k);
      CHECK(vcache.download() == want_v);
    }
  }
}

TEST_CASE("the qkv prologue gives a token the same q and KV row alone and in a batch", "[gpu][rope]") {
  const int32_t hq = 16, hkv = 4, hd = 128, tokens = 12;
  const int32_t q_dim = hq * hd, kv_dim = hkv * hd, width = q_dim + 2 * kv_dim;
  for (auto norm : {kc::QkNormMode::kFull, kc::QkNormMode::kPerHead}) {
    INFO("norm " << int(norm));
    const bool full = norm == kc::QkNormMode::kFull;
    auto qkv = random_floats(size_t(tokens) * width, 95, 2.0f);
    auto qn = random_floats(size_t(full ? q_dim : hd), 96, 0.5f, 1.5f);
    auto kn = random_floats(size_t(full ? kv_dim : hd), 97, 0.5f, 1.5f);
    std::vector<float> freq(size_t(hd / 2));
    for (int32_t i = 0; i < hd / 2; ++i) freq[size_t(i)] = std::pow(10000.0f, -2.0f * float(i) / float(hd));
    std::vector<int32_t> pos(tokens), slots(tokens);
    for (int32_t t = 0; t < tokens; ++t) {
      pos[size_t(t)] = 7 * t + 3;
      slots[size_t(t)] = 2 * t + 1;
    }
    DeviceArray<float> dqkv(qkv), dqn(qn), dkn(kn), dfreq(freq), qa(size_t(tokens) * q_dim), qb(qa.size());
    DeviceArray<int32_t> dpos(pos), dslots(slots);
    DeviceArray<uint16_t> ka(size_t(2 * tokens + 1) * kv_dim), va(ka.size()), kb(ka.size()), vb(ka.size());
    for (auto* a : {&ka, &va, &kb, &vb}) a->zero();
    kc::QkvPrologueParams p;
    p.qkv = dqkv.get();
    p.qk_norm = norm;
    p.q_norm = dqn.get();
    p.k_norm = dkn.get();
    p.positions = dpos.get();
    p.inv_freq = dfreq.get();
    p.kv_dtype = kc::DType::kBF16;
    p.slot_mapping = dslots.get();
    p.num_q_heads = hq;
    p.num_kv_heads = hkv;
    p.head_dim = hd;
    p.num_tokens = tokens;
    p.q_out = qa.get();
    p.k_cache = ka.get();
    p.v_cache = va.get();
    kc::launch_qkv_prologue(p, nullptr);
    for (int32_t t = 0; t < tokens; ++t) {
      kc::QkvPrologueParams one = p;
      one.num_tokens = 1;
      one.qkv = dqkv.get() + int64_t{t} * width;
      one.positions = dpos.get() + t;
      one.slot_mapping = dslots.get() + t;
      one.q_out = qb.get() + int64_t{t} * q_dim;
      one.k_cache = kb.get();
      one.v_cache = vb.get();
      kc::launch_qkv_prologue(one, nullptr);
    }
    CHECK(qa.download() == qb.download());
    CHECK(ka.download() == kb.download());
    CHECK(va.download() == vb.download());
  }
}
