// Rng: a small, portable, seedable random generator (splitmix64). Unlike std::*_distribution its
// numbers are the same on every standard library, which the embedded model's weights, the
// benchmark models and per-request sampling streams rely on.
#pragma once

#include <cmath>
#include <cstdint>

namespace aurora::runtime {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits (exactly representable as float).
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  double uniform_double() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  // Approximately standard normal: the Irwin-Hall sum of four 16-bit uniforms from one draw,
  // centred and scaled to unit variance (bounded by +-3.46). Cheap enough to fill hundreds of
  // millions of random weights; these weights only need to be spread, not exactly Gaussian.
  float normal() {
    const uint64_t bits = next_u64();
    const uint32_t sum = static_cast<uint32_t>(bits & 0xffff) + static_cast<uint32_t>((bits >> 16) & 0xffff) +
                         static_cast<uint32_t>((bits >> 32) & 0xffff) + static_cast<uint32_t>(bits >> 48);
    constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(12 / 4) per unit uniform
    return (static_cast<float>(sum) - 131070.0f) * kScale;
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next_u64() % n); }

 private:
  uint64_t state_;
};

// A stateless mix of two values (per-request, per-step sampling streams).
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0xd1b54a32d192ed03ull));
  r.next_u64();
  return r.next_u64();
}

}  // namespace aurora::runtime
