#include <algorithm>
#include <catch2/catch.hpp>

#include "aurora/kernels/attention.hpp"
#include "kernel_test_support.hpp"

using namespace aurora::kernels;
using namespace aurora::kernels::test;

namespace {

// Dense reference: q [T, nq, hd] over contiguous k/v [T, nk, hd] of one sequence.
std::vector<double> dense_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int T, int nq, int nk, int hd, int window) {
  std::vector<double> out(size_t(T) * nq * hd, 0.0);
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < nq; ++h) {
      int kvh = h / (nq / nk);
      int start = window > 0 ? std::max(0, t - window + 1) : 0;
      std::vector<double> s;
      for (int j = start; j <= t; ++j) {
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(q[(size_t(t) * nq + h) * hd + i]) * k[(size_t(j) * nk + kvh) * hd + i];
        s.push_back(d * scale);
      }
      double m = *std::max_element(s.begin(), s.end()), sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - m));
      for (int j = start; j <= t; ++j) {
        for (int i = 0; i < hd; ++i) {
          out[(size_t(t) * nq + h) * hd + i] += s[j - start] / sum * v[(size_t(j) * nk + kvh) * hd + i];
        }
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("paged attention matches dense causal attention, chunked or not", "[kernels][attention]") {
  const int T = 23, nq = 4, nk = 2, hd = 8, bs = 4;
  const int num_blocks = 16;
  auto q = random_floats(size_t(T) * nq * hd, 21);
  auto k = random_floats(size_t(T) * nk * hd, 22);
  auto v = random_floats(size_t(T) * nk * hd, 23);
  // A scattered block table: logical block b lives in physical block table[b].
  std::vector<int32_t> table = {9, 2, 14, 0, 7, 11, 3};
  for (int window : {0, 5}) {
    std::vector<float> kc(size_t(num_blocks) * bs * nk * hd, 0.0f), vc(kc.size(), 0.0f);
    std::vector<int32_t> slots(T), seq(T, 0), pos(T);
    for (int t = 0; t < T; ++t) {
      slots[t] = table[t / bs] * bs + t % bs;
      pos[t] = t;
    }
    cpu::write_kv_cache(KvCacheWriteParams{k.data(), v.data(), kc.data(), vc.data(), slots.data(), T, nk, hd});
    auto ref = dense_attention(q, k, v, T, nq, nk, hd, window);
    std::vector<float> ws(64);
    // Whole prompt at once, then token by token (decode-style): same rows.
    auto out_all = poisoned(size_t(T) * nq * hd);
    PagedAttentionParams p;
    p.q = q.data();
    p.out = out_all.data();
    p.k_cache = kc.data();
    p.v_cache = vc.data();
    p.block_tables = table.data();
    p.token_seq = seq.data();
    p.token_pos = pos.data();
    p.num_tokens = T;
    p.num_q_heads = nq;
    p.num_kv_heads = nk;
    p.head_dim = hd;
    p.block_size = bs;
    p.max_blocks_per_seq = int(table.size());
    p.sliding_window = window;
    p.scale = float(1.0 / std::sqrt(double(hd)));
    cpu::paged_attention(p, ws.data(), int64_t(ws.size()));
    CHECK(max_abs_diff(out_all, ref) < 1e-5);
    for (int t = 0; t < T; ++t) {
      std::vector<float> one(size_t(nq) * hd);
      PagedAttentionParams d = p;
      d.q = q.data() + size_t(t) * nq * hd;
      d.out = one.data();
      d.token_seq = seq.data() + t;
      d.token_pos = pos.data() + t;
      d.num_tokens = 1;
      cpu::paged_attention(d, ws.data(), int64_t(ws.size()));
      for (int i = 0; i < nq * hd; ++i) REQUIRE(one[i] == out_all[size_t(t) * nq * hd + i]);
    }
  }
}

TEST_CASE("paged attention refuses a workspace that is too small", "[kernels][attention]") {
  std::vector<float> q(8, 1.0f), out(8), kc(64, 0.0f), vc(64, 0.0f), ws(2);
  std::vector<int32_t> table = {0, 1}, seq = {0}, pos = {5};
  PagedAttentionParams p;
  p.q = q.data();
  p.out = out.data();
  p.k_cache = kc.data();
  p.v_cache = vc.data();
  p.block_tables = table.data();
  p.token_seq = seq.data();
  p.token_pos = pos.data();
  p.num_tokens = 1;
  p.num_q_heads = 1;
  p.num_kv_heads = 1;
  p.head_dim = 8;
  p.block_size = 4;
  p.max_blocks_per_seq = 2;
  CHECK_THROWS_WITH(cpu::paged_attention(p, ws.data(), 2), Catch::Contains("workspace too small"));
}
