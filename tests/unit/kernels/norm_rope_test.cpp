#include <catch2/catch.hpp>

#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/embedding.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "aurora/kernels/rope.hpp"
#include "kernel_test_support.hpp"

using namespace aurora::kernels;
using namespace aurora::kernels::test;

TEST_CASE("rms_norm matches the formula and works in place", "[kernels][rms_norm]") {
  const int rows = 5, dim = 48;
  auto x = random_floats(size_t(rows) * dim, 11, 3.0f);
  auto w = random_floats(dim, 12);
  auto y = poisoned(x.size());
  RmsNormParams p{x.data(), w.data(), y.data(), rows, dim, 1e-5f};
  cpu::rms_norm(p);
  std::vector<double> ref(x.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; ++i) ref[r * dim + i] = w[i] * x[r * dim + i] * inv;
  }
  CHECK(max_abs_diff(y, ref) < 1e-5);
  p.y = x.data();  // in place
  cpu::rms_norm(p);
  CHECK(max_abs_diff(x, ref) < 1e-5);
}

TEST_CASE("rope rotates halves (rotate_half convention) and keeps norms", "[kernels][rope]") {
  const int tokens = 3, nq = 4, nk = 2, hd = 16;
  auto q = random_floats(size_t(tokens) * nq * hd, 13);
  auto k = random_floats(size_t(tokens) * nk * hd, 14);
  auto q0 = q, k0 = k;
  std::vector<int32_t> pos = {0, 5, 1000};
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = float(1.0 / std::pow(10000.0, 2.0 * i / hd));
  RopeParams p{q.data(), k.data(), pos.data(), inv_freq.data(), tokens, nq, nk, hd};
  cpu::rope(p);
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < nq; ++h) {
      const float* in = &q0[(size_t(t) * nq + h) * hd];
      const float* out = &q[(size_t(t) * nq + h) * hd];
      for (int i = 0; i < hd / 2; ++i) {
        double a = double(pos[t]) * inv_freq[i];
        double e1 = in[i] * std::cos(a) - in[i + hd / 2] * std::sin(a);
        double e2 = in[i + hd / 2] * std::cos(a) + in[i] * std::sin(a);
        CHECK(std::fabs(out[i] - e1) < 2e-4);
        CHECK(std::fabs(out[i + hd / 2] - e2) < 2e-4);
      }
    }
  }
  // Position 0 is the identity.
  for (int i = 0; i < nk * hd; ++i) CHECK(k[i] == k0[i]);
}

TEST_CASE("embedding, add, sigmoid gate and clamp", "[kernels][elementwise]") {
  auto table = random_floats(10 * 4, 15);
  std::vector<int32_t> ids = {3, 0, 9};
  auto out = poisoned(3 * 4);
  cpu::embedding(EmbeddingParams{ids.data(), table.data(), out.data(), 3, 4, 10});
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 4; ++i) CHECK(out[t * 4 + i] == table[ids[t] * 4 + i]);
  }
  std::vector<float> y = {1, 2, 3, 4}, x = {10, 20, 30, 40};
  cpu::add(AddParams{y.data(), x.data(), 4});
  CHECK(y == std::vector<float>{11, 22, 33, 44});
  std::vector<float> gate = {0.0f, 100.0f};
  std::vector<float> acc = {1, 1, 1, 1};
  cpu::sigmoid_gate_add(SigmoidGateAddParams{acc.data(), x.data(), gate.data(), 2, 2});
  CHECK(acc[0] == Approx(1 + 0.5 * 10));
  CHECK(acc[3] == Approx(1 + 40));
  std::vector<float> c = {-5, 0.5f, 7};
  cpu::clamp(ClampParams{c.data(), 3, 2.0f});
  CHECK(c == std::vector<float>{-2, 0.5f, 2});
}
