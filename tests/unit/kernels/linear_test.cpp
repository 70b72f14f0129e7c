#include <catch2/catch.hpp>

#include "aurora/kernels/linear.hpp"
#include "kernel_test_support.hpp"

using namespace aurora::kernels;
using namespace aurora::kernels::test;

namespace {
std::vector<double> reference_linear(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                                     int rows, int in, int out) {
  std::vector<double> y(static_cast<size_t>(rows) * out);
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int i = 0; i < in; ++i) acc += double(x[size_t(r) * in + i]) * w[size_t(o) * in + i];
      y[size_t(r) * out + o] = acc;
    }
  }
  return y;
}
}  // namespace

TEST_CASE("linear matches a double-precision reference, with and without bias", "[kernels][linear]") {
  for (auto [rows, in, out] : {std::tuple{1, 64, 32}, std::tuple{7, 37, 19}, std::tuple{13, 256, 300}}) {
    auto x = random_floats(size_t(rows) * in, 1);
    auto w = random_floats(size_t(out) * in, 2, 0.1f);
    auto b = random_floats(size_t(out), 3);
    for (bool with_bias : {false, true}) {
      auto y = poisoned(size_t(rows) * out);
      LinearParams p;
      p.x = x.data();
      p.weight = w.data();
      p.bias = with_bias ? b.data() : nullptr;
      p.y = y.data();
      p.num_rows = rows;
      p.in_features = in;
      p.out_features = out;
      cpu::linear(p);
      auto ref = reference_linear(x, w, with_bias ? b.data() : nullptr, rows, in, out);
      CHECK(max_abs_diff(y, ref) < 1e-4);
    }
  }
}

TEST_CASE("linear accumulate adds into y", "[kernels][linear]") {
  auto x = random_floats(3 * 16, 4);
  auto w = random_floats(8 * 16, 5);
  std::vector<float> y(3 * 8, 1.5f);
  LinearParams p;
  p.x = x.data();
  p.weight = w.data();
  p.y = y.data();
  p.num_rows = 3;
  p.in_features = 16;
  p.out_features = 8;
  p.accumulate = true;
  cpu::linear(p);
  auto ref = reference_linear(x, w, nullptr, 3, 16, 8);
  for (auto& v : ref) v += 1.5;
  CHECK(max_abs_diff(y, ref) < 1e-4);
}

TEST_CASE("linear is batch invariant: a row's bits do not depend on its neighbours", "[kernels][linear]") {
  const int in = 203, out = 77;
  auto x = random_floats(size_t(17) * in, 6);
  auto w = random_floats(size_t(out) * in, 7);
  std::vector<float> batched(size_t(17) * out);
  LinearParams p;
  p.x = x.data();
  p.weight = w.data();
  p.y = batched.data();
  p.num_rows = 17;
  p.in_features = in;
  p.out_features = out;
  cpu::linear(p);
  for (int r = 0; r < 17; ++r) {
    std::vector<float> alone(out);
    LinearParams q = p;
    q.x = x.data() + size_t(r) * in;
    q.y = alone.data();
    q.num_rows = 1;
    cpu::linear(q);
    for (int o = 0; o < out; ++o) REQUIRE(alone[o] == batched[size_t(r) * out + o]);
    CHECK(cpu::dot(x.data() + size_t(r) * in, w.data(), in) == alone[0]);
  }
}

TEST_CASE("linear honours row strides", "[kernels][linear]") {
  auto x = random_floats(4 * 10, 8);  // rows of 10, use the first 6 floats
  auto w = random_floats(3 * 6, 9);
  std::vector<float> y(4 * 5, -7.0f);  // rows of 5, write the first 3 floats
  LinearParams p;
  p.x = x.data();
  p.x_stride = 10;
  p.weight = w.data();
  p.y = y.data();
  p.y_stride = 5;
  p.num_rows = 4;
  p.in_features = 6;
  p.out_features = 3;
  cpu::linear(p);
  for (int r = 0; r < 4; ++r) {
    for (int o = 0; o < 3; ++o) {
      double acc = 0;
      for (int i = 0; i < 6; ++i) acc += double(x[r * 10 + i]) * w[o * 6 + i];
      CHECK(std::fabs(y[r * 5 + o] - acc) < 1e-5);
    }
    CHECK(y[r * 5 + 3] == -7.0f);
    CHECK(y[r * 5 + 4] == -7.0f);
  }
}
