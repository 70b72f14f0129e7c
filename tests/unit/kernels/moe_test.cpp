#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>

#include "aurora/kernels/linear.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "aurora/kernels/moe_routing.hpp"
#include "aurora/kernels/swiglu_ffn.hpp"
#include "kernel_test_support.hpp"

using namespace aurora::kernels;
using namespace aurora::kernels::test;

TEST_CASE("top-k routing: softmax over all experts, top-k, optional renormalisation", "[kernels][moe]") {
  const int T = 6, E = 8, K = 2;
  auto logits = random_floats(size_t(T) * E, 31, 2.0f);
  for (auto norm : {TopKNormalization::kNone, TopKNormalization::kRenormalize}) {
    std::vector<int32_t> ids(T * K, -1);
    auto w = poisoned(T * K);
    cpu::topk_routing(TopKRoutingParams{logits.data(), ids.data(), w.data(), T, E, K, norm});
    for (int t = 0; t < T; ++t) {
      std::vector<double> p(E);
      double m = *std::max_element(&logits[t * E], &logits[t * E] + E), sum = 0;
      for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(logits[t * E + e] - m));
      for (auto& x : p) x /= sum;
      std::vector<int> order(E);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double chosen = p[order[0]] + p[order[1]];
      for (int j = 0; j < K; ++j) {
        CHECK(ids[t * K + j] == order[j]);
        double expect = norm == TopKNormalization::kNone ? p[order[j]] : p[order[j]] / chosen;
        CHECK(std::fabs(w[t * K + j] - expect) < 1e-6);
      }
    }
  }
}

TEST_CASE("top-k routing breaks ties toward the lower expert id", "[kernels][moe]") {
  std::vector<float> logits = {1, 3, 3, 0};
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  cpu::topk_routing(TopKRoutingParams{logits.data(), ids.data(), w.data(), 1, 4, 2, TopKNormalization::kRenormalize});
  CHECK(ids == std::vector<int32_t>{1, 2});
  CHECK(w[0] == Approx(0.5));
}

TEST_CASE("permute is a stable counting sort and combine undoes it with weights", "[kernels][moe]") {
  const int T = 9, K = 3, E = 5, H = 4;
  std::vector<int32_t> ids(T * K);
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < K; ++j) ids[t * K + j] = (t * 7 + j * 3) % E;  // distinct per token
  }
  std::vector<int32_t> offsets(E + 1), permuted(T * K), position(T * K);
  cpu::permute(PermuteParams{ids.data(), T * K, E, offsets.data(), permuted.data(), position.data()});
  CHECK(offsets.front() == 0);
  CHECK(offsets.back() == T * K);
  for (int e = 0; e < E; ++e) {
    for (int i = offsets[e]; i < offsets[e + 1]; ++i) {
      CHECK(ids[permuted[i]] == e);
      if (i > offsets[e]) CHECK(permuted[i] > permuted[i - 1]);  // stable
    }
  }
  for (int i = 0; i < T * K; ++i) CHECK(permuted[position[i]] == i);
  // Each token's payload carries its own id: row t = [t, t, t, t]. An "expert" e adds 100*e.
  std::vector<float> x(T * H);
  for (int t = 0; t < T; ++t) std::fill(&x[t * H], &x[t * H] + H, float(t));
  std::vector<int32_t> src_rows(T * K);
  for (int i = 0; i < T * K; ++i) src_rows[i] = permuted[i] / K;
  auto gathered = poisoned(T * K * H);
  cpu::gather_rows(GatherRowsParams{x.data(), src_rows.data(), gathered.data(), T * K, H, 0, 0});
  for (int e = 0; e < E; ++e) {
    for (int i = offsets[e]; i < offsets[e + 1]; ++i) {
      for (int h = 0; h < H; ++h) gathered[i * H + h] += 100.0f * e;
    }
  }
  std::vector<float> weights(T * K);
  for (int i = 0; i < T * K; ++i) weights[i] = 0.25f * float(1 + i % K);
  auto out = poisoned(T * H);
  cpu::combine(CombineParams{gathered.data(), position.data(), ids.data(), weights.data(), out.data(), T, K, H, 0});
  for (int t = 0; t < T; ++t) {
    double expect = 0;
    for (int j = 0; j < K; ++j) expect += weights[t * K + j] * (t + 100.0 * ids[t * K + j]);
    for (int h = 0; h < H; ++h) CHECK(out[t * H + h] == Approx(expect));
  }
}

TEST_CASE("swiglu ffn matches silu(gate) * up then down", "[kernels][moe]") {
  const int rows = 5, H = 12, I = 7;
  auto x = random_floats(rows * H, 41);
  auto wg = random_floats(I * H, 42, 0.3f), wu = random_floats(I * H, 43, 0.3f), wd = random_floats(H * I, 44, 0.3f);
  auto y = poisoned(rows * H);
  std::vector<float> ws(cpu::swiglu_workspace_floats(rows, I));
  SwiGluFfnParams p;
  p.x = x.data();
  p.w_gate = wg.data();
  p.w_up = wu.data();
  p.w_down = wd.data();
  p.y = y.data();
  p.num_rows = rows;
  p.hidden = H;
  p.intermediate = I;
  cpu::swiglu_ffn(p, ws.data(), int64_t(ws.size()));
  std::vector<double> ref(rows * H);
  for (int r = 0; r < rows; ++r) {
    std::vector<double> a(I);
    for (int i = 0; i < I; ++i) {
      double g = 0, u = 0;
      for (int h = 0; h < H; ++h) {
        g += double(x[r * H + h]) * wg[i * H + h];
        u += double(x[r * H + h]) * wu[i * H + h];
      }
      a[i] = g / (1 + std::exp(-g)) * u;
    }
    for (int h = 0; h < H; ++h) {
      double acc = 0;
      for (int i = 0; i < I; ++i) acc += a[i] * wd[h * I + i];
      ref[r * H + h] = acc;
    }
  }
  CHECK(max_abs_diff(y, ref) < 1e-5);
}
