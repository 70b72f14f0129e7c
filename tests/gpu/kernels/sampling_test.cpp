// GPU sampling against cpu::sample: the same uniform numbers must give the same tokens, for greedy
// rows and every mix of temperature, top-k and top-p, on small and full-size vocabularies.
#include <catch2/catch.hpp>

#include "aurora/kernels/cuda/sampling.hpp"
#include "aurora/kernels/sampling.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;
using kernels::SamplingRow;

namespace {

// Both samplers sum up to 150k float32 probabilities, in different orders, so the CDF each one
// inverts carries rounding of ~1e-5 relative. Two different tokens are both right when, in double
// precision over the reference's kept set, the probability mass strictly between them (id order, the
// walk order) is below 1e-4 of the total: the uniform sits on a boundary that rounding can move.
bool rounding_boundary(const float* logits, int32_t vocab, const SamplingRow& row, int32_t a, int32_t b) {
  if (row.temperature <= 0.0f) return false;  // greedy is exact
  std::vector<double> v(size_t(vocab), 0.0);
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  const float inv_t = 1.0f / row.temperature;
  for (int32_t i = 0; i < vocab; ++i) {
    v[size_t(i)] = double(logits[i] * inv_t);
    ids[size_t(i)] = i;
  }
  std::sort(ids.begin(), ids.end(), [&](int32_t x, int32_t y) {
    return v[size_t(x)] > v[size_t(y)] || (v[size_t(x)] == v[size_t(y)] && x < y);
  });
  int32_t count = row.top_k > 0 && row.top_k < vocab ? row.top_k : vocab;
  const double mx = v[size_t(ids[0])];
  std::vector<double> e(size_t(vocab), 0.0);
  double total = 0;
  for (int32_t c = 0; c < count; ++c) total += (e[size_t(ids[size_t(c)])] = std::exp(v[size_t(ids[size_t(c)])] - mx));
  if (row.top_p < 1.0f) {
    double mass = 0;
    int32_t keep = 0;
    while (keep < count) {
      mass += e[size_t(ids[size_t(keep)])];
      ++keep;
      if (mass >= double(row.top_p) * total) break;
    }
    for (int32_t c = keep; c < count; ++c) e[size_t(ids[size_t(c)])] = 0.0;
    total = mass;
  } else {
    for (int32_t c = count; c < vocab; ++c) e[size_t(ids[size_t(c)])] = 0.0;
  }
  double between = 0;  // mass strictly between the two tokens in the walk
  for (int32_t i = std::min(a, b) + 1; i < std::max(a, b); ++i) between += e[size_t(i)];
  return between <= 1e-4 * total;
}

}  // namespace

TEST_CASE("GPU sampling picks the CPU twin's tokens", "[gpu][sampling]") {
  for (int32_t vocab : {7, 1000, 32000, 151936}) {
    INFO("vocab " << vocab);
    std::vector<SamplingRow> rows;
    std::mt19937 rng{static_cast<uint32_t>(vocab)};
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    const float temps[] = {0.0f, 1.0f, 0.7f, 1.3f};
    const float top_ps[] = {1.0f, 0.9f, 0.5f, 0.99f};
    const int32_t top_ks[] = {0, 1, 20, 50};
    for (float t : temps) {
      for (float p : top_ps) {
        for (int32_t k : top_ks) rows.push_back(SamplingRow{t, p, k, uni(rng)});
      }
    }
    const int32_t n = int32_t(rows.size());
    auto logits = random_floats(size_t(n) * vocab, 130 + uint32_t(vocab), 3.0f);
    // Ties: a few rows with repeated values at the top.
    for (int32_t r = 0; r < n; r += 5) {
      for (int32_t i = 0; i < std::min(vocab, 6); ++i) logits[size_t(r) * vocab + size_t(i) * (vocab / 6)] = 12.0f;
    }
    std::vector<int32_t> want(static_cast<size_t>(n));
    std::vector<unsigned char> ws(kcpu::sampling_workspace_bytes(vocab));
    kcpu::sample(kernels::SampleParams{logits.data(), rows.data(), want.data(), n, vocab, 0}, ws.data(), ws.size());
    DeviceArray<float> dl(logits);
    DeviceArray<SamplingRow> drows(rows);
    DeviceArray<int32_t> out(static_cast<size_t>(n));
    kc::launch_sample(kernels::SampleParams{dl.get(), drows.get(), out.get(), n, vocab, 0}, nullptr);
    auto got = out.download();
    int32_t mismatches = 0;
    for (int32_t r = 0; r < n; ++r) {
      if (got[size_t(r)] != want[size_t(r)] && !rounding_boundary(logits.data() + size_t(r) * vocab, vocab,
                                                                  rows[size_t(r)], got[size_t(r)], want[size_t(r)])) {
        ++mismatches;
        UNSCOPED_INFO("row " << r << ": T " << rows[size_t(r)].temperature << " top_p " << rows[size_t(r)].top_p
                             << " top_k " << rows[size_t(r)].top_k << " u " << rows[size_t(r)].uniform << ": gpu "
                             << got[size_t(r)] << " cpu " << want[size_t(r)]);
      }
    }
    CHECK(mismatches == 0);
  }
}
