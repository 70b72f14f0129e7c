#include "aurora/kernels/linear.hpp"

#include <algorithm>
#include <cstring>

#include "aurora/kernels/kernel_check.hpp"
#include "dot_rows.hpp"

namespace aurora::kernels::cpu {

using detail::dot_rows;

float dot(const float* a, const float* b, int32_t n) { return detail::dot_one(a, b, n); }

void linear(const LinearParams& p) {
  AURORA_KERNEL_CHECK(p.num_rows >= 0 && p.in_features > 0 && p.out_features > 0, "");
  if (p.num_rows == 0) return;
  const int64_t x_stride = p.x_stride ? p.x_stride : p.in_features;
  const int64_t y_stride = p.y_stride ? p.y_stride : p.out_features;
  // Tile the output features so that a tile of weight rows stays in cache while every block of
  // four input rows streams past it.
  constexpr int64_t kTileBytes = 192 * 1024;
  const int32_t tile_out =
      static_cast<int32_t>(std::clamp<int64_t>(kTileBytes / (int64_t{p.in_features} * 4), 1, p.out_features));
  for (int32_t o0 = 0; o0 < p.out_features; o0 += tile_out) {
    const int32_t o1 = std::min(p.out_features, o0 + tile_out);
    int32_t r0 = 0;
    for (; r0 < p.num_rows; r0 += 4) {
      const int32_t nr = std::min(4, p.num_rows - r0);
      const float* xs[4];
      for (int r = 0; r < nr; ++r) xs[r] = p.x + (r0 + r) * x_stride;
      for (int32_t o = o0; o < o1; ++o) {
        const float* w = p.weight + int64_t{o} * p.in_features;
        float out[4];
        switch (nr) {
          case 4: dot_rows<4>(xs, w, p.in_features, out); break;
          case 3: dot_rows<3>(xs, w, p.in_features, out); break;
          case 2: dot_rows<2>(xs, w, p.in_features, out); break;
          default: dot_rows<1>(xs, w, p.in_features, out); break;
        }
        const float b = p.bias ? p.bias[o] : 0.0f;
        for (int r = 0; r < nr; ++r) {
          float* y = p.y + (r0 + r) * y_stride + o;
          const float v = p.bias ? out[r] + b : out[r];
          *y = p.accumulate ? *y + v : v;
        }
      }
    }
  }
}

}  // namespace aurora::kernels::cpu
