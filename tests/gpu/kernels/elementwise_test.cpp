// Small GPU ops against their CPU twins: embedding, add, sigmoid gate, clamp, gathers, silu * up,
// conversions and the on-device random initialiser.
#include <catch2/catch.hpp>

#include "aurora/kernels/cuda/elementwise.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/embedding.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;

TEST_CASE("embedding matches the CPU twin for float32 and bf16 tables", "[gpu][elementwise]") {
  const int32_t vocab = 97, hidden = 72, tokens = 13;
  auto table = random_floats(size_t(vocab) * hidden, 1);
  std::vector<int32_t> ids = {0, 96, 5, 5, 33, 1, 2, 95, 40, 41, 42, 7, 0};
  DeviceArray<int32_t> d_ids(ids);
  for (auto dtype : {kc::DType::kF32, kc::DType::kBF16}) {
    auto ref_table = dtype == kc::DType::kF32 ? table : rounded_bf16(table);
    std::vector<float> want(size_t(tokens) * hidden);
    kcpu::embedding(kernels::EmbeddingParams{ids.data(), ref_table.data(), want.data(), tokens, hidden, vocab});
    DeviceArray<float> d_table(table);
    auto d_table16 = upload_bf16(table);
    DeviceArray<float> out(want.size());
    kc::launch_embedding(kc::EmbeddingCudaParams{d_ids.get(),
                                                 dtype == kc::DType::kF32 ? static_cast<const void*>(d_table.get())
                                                                          : static_cast<const void*>(d_table16.get()),
                                                 dtype, out.get(), tokens, hidden, vocab},
                         nullptr);
    CHECK(relative_error(out.download(), want) == 0.0);
  }
}

TEST_CASE("add, sigmoid gate, clamp and silu * up match their twins", "[gpu][elementwise]") {
  const int32_t rows = 7, dim = 300;
  auto y = random_floats(size_t(rows) * dim, 2), x = random_floats(size_t(rows) * dim, 3),
       gate = random_floats(rows, 4);
  {
    auto want = y;
    kcpu::add(kernels::AddParams{want.data(), x.data(), int64_t(want.size())});
    DeviceArray<float> dy(y), dx(x);
    kc::launch_add(kernels::AddParams{dy.get(), dx.get(), int64_t(y.size())}, nullptr);
    CHECK(relative_error(dy.download(), want) == 0.0);
  }
  {
    auto want = y;
    kcpu::sigmoid_gate_add(kernels::SigmoidGateAddParams{want.data(), x.data(), gate.data(), rows, dim});
    DeviceArray<float> dy(y), dx(x), dg(gate);
    kc::launch_sigmoid_gate_add(kernels::SigmoidGateAddParams{dy.get(), dx.get(), dg.get(), rows, dim}, nullptr);
    CHECK(relative_error(dy.download(), want) < kTolF32);
  }
  {
    auto want = x;
    kcpu::clamp(kernels::ClampParams{want.data(), int64_t(want.size()), 0.7f});
    DeviceArray<float> dx(x);
    kc::launch_clamp(kernels::ClampParams{dx.get(), int64_t(x.size()), 0.7f}, nullptr);
    CHECK(relative_error(dx.download(), want) == 0.0);
  }
  {
    const int32_t inter = dim / 2;
    std::vector<float> want(size_t(rows) * inter);
    kcpu::silu_mul(kernels::SiluMulParams{x.data(), want.data(), rows, inter, 0});
    DeviceArray<float> dx(x), out(want.size());
    DeviceArray<uint16_t> out16(want.size());
    kc::launch_silu_mul(kc::SiluMulCudaParams{dx.get(), 0, out.get(), as_bf16(out16), rows, inter}, nullptr);
    CHECK(relative_error(out.download(), want) < kTolF32);
    CHECK(relative_error(download_bf16(out16), want) < kTolBf16Out);
  }
}

TEST_CASE("row gathers match the CPU twin", "[gpu][elementwise]") {
  const int32_t src_rows = 20, width = 64;
  auto src = random_floats(size_t(src_rows) * width, 5);
  std::vector<int32_t> rows = {19, 0, 3, 3, 7, 12};
  std::vector<float> want(rows.size() * width);
  kcpu::gather_rows(kernels::GatherRowsParams{src.data(), rows.data(), want.data(), int32_t(rows.size()), width, 0, 0});
  DeviceArray<float> dsrc(src), out(want.size());
  DeviceArray<int32_t> drows(rows);
  kc::launch_gather_rows(
      kernels::GatherRowsParams{dsrc.get(), drows.get(), out.get(), int32_t(rows.size()), width, 0, 0}, nullptr);
  CHECK(relative_error(out.download(), want) == 0.0);
  // bf16 rows through a divisor (item -> token), as the prefill expert path gathers them.
  auto src16 = upload_bf16(src);
  DeviceArray<uint16_t> out16(want.size());
  std::vector<int32_t> items = {19 * 2 + 1, 0, 3 * 2, 3 * 2 + 1, 7 * 2, 12 * 2 + 1};
  DeviceArray<int32_t> ditems(items);
  kc::launch_gather_rows_bf16(
      kc::GatherRowsBf16Params{as_bf16(src16), width, ditems.get(), 2, as_bf16(out16), int32_t(items.size()), width},
      nullptr);
  CHECK(relative_error(download_bf16(out16), rounded_bf16(want)) == 0.0);
}

TEST_CASE("bf16 conversion rounds to nearest even and the random fill is seeded", "[gpu][elementwise]") {
  auto v = random_floats(1000, 6, 3.0f);
  v.push_back(1.0f + 1.0f / 256.0f);  // a tie: rounds to even (1.0)
  DeviceArray<float> dv(v), back(v.size());
  DeviceArray<uint16_t> d16(v.size());
  kc::launch_f32_to_bf16(dv.get(), as_bf16(d16), int64_t(v.size()), nullptr);
  kc::launch_bf16_to_f32(as_bf16(d16), back.get(), int64_t(v.size()), nullptr);
  CHECK(relative_error(back.download(), rounded_bf16(v)) == 0.0);
  CHECK(back.download().back() == 1.0f);

  const int64_t n = 1 << 20;
  DeviceArray<float> a(n), b(n), c(n);
  kc::launch_random_fill(a.get(), kc::DType::kF32, n, 42, 0.5f, 1.0f, nullptr);
  kc::launch_random_fill(b.get(), kc::DType::kF32, n, 42, 0.5f, 1.0f, nullptr);
  kc::launch_random_fill(c.get(), kc::DType::kF32, n, 43, 0.5f, 1.0f, nullptr);
  auto ha = a.download(), hb = b.download(), hc = c.download();
  CHECK(ha == hb);
  CHECK(ha != hc);
  double mean = 0, var = 0;
  for (float x : ha) mean += x;
  mean /= n;
  for (float x : ha) var += (x - mean) * (x - mean);
  var /= n;
  CHECK(mean == Approx(1.0).margin(0.01));
  CHECK(std::sqrt(var) == Approx(0.5).margin(0.01));
}
