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
      if (got[size_t(r)] != want[size_t(r)]) {
        ++mismatches;
        UNSCOPED_INFO("row " << r << ": T " << rows[size_t(r)].temperature << " top_p " << rows[size_t(r)].top_p << " top_k "
                             << rows[size_t(r)].top_k << " u " << rows[size_t(r)].uniform << ": gpu " << got[size_t(r)]
                             << " cpu " << want[size_t(r)]);
      }
    }
    CHECK(mismatches == 0);
  }
}
