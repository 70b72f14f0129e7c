// Rng: the load generator's seeded random source (xoshiro256** seeded through splitmix64).
//
// Contract: every draw is fully specified here (no std:: distributions, whose algorithms differ
// between standard libraries), so a seed gives the same arrivals and prompts on every platform.
// Not thread-safe: one Rng per consumer.
#pragma once

#include <cstdint>

namespace aurora::loadgen {

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t next_u64();
  double uniform01();                           // [0, 1)
  double uniform_open01();                      // (0, 1]: safe under log()
  int64_t uniform_int(int64_t lo, int64_t hi);  // inclusive bounds, lo <= hi
  double normal();                              // standard normal (Box-Muller, one value per call)
  double exponential(double mean);
  // Gamma(shape, scale) by Marsaglia-Tsang; shape < 1 uses the Gamma(shape + 1) * U^(1/shape) boost.
  double gamma(double shape, double scale);

  // An independent stream derived from a seed and a stream number (one per consumer).
  static Rng derived(uint64_t seed, uint64_t stream);

 private:
  uint64_t s_[4];
};

}  // namespace aurora::loadgen
