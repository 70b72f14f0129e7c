// The heterogeneous plans' byte split (internal detail::ProportionalSplit): its division-free floor is
// the exact floor(bytes * units_done / units) on every path (one-correction estimate, step-corrected
// estimate, 128-bit), including integer quotients and products at the 2^50 and 2^62 boundaries, and a
// pair's pieces add up to its bytes in any order.
#include "proportional_split.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <vector>

using aurora::sched::detail::ProportionalSplit;

namespace {

__extension__ using Int128 = __int128;

int64_t exact_floor(int64_t bytes, int64_t done, int64_t units) {
  return static_cast<int64_t>(static_cast<Int128>(bytes) * done / units);
}

// Checks bytes_upto against the exact floor at units_done = done.
void check_at(int64_t bytes, int64_t units, int64_t done) {
  ProportionalSplit s = ProportionalSplit::make(bytes, units);
  s.units_done = done;
  INFO("bytes " << bytes << " units " << units << " done " << done);
  REQUIRE(s.bytes_upto() == exact_floor(bytes, done, units));
}

}  // namespace

TEST_CASE("the division-free floor is exact on every path") {
  std::mt19937_64 rng(41);
  // Paths: bytes * units <= 2^50 (one correction), <= 2^62 (corrected estimate), beyond (128-bit).
  const int64_t max_bytes[] = {int64_t{1} << 10, int64_t{1} << 20, int64_t{1} << 24, int64_t{1} << 31,
                               int64_t{1} << 40};
  int checked = 0;
  for (int64_t cap : max_bytes) {
    std::uniform_int_distribution<int64_t> bytes_of(1, cap);
    for (int rep = 0; rep < 400; ++rep) {
      const int64_t bytes = bytes_of(rng);
      // Picoseconds at 40-100 Gbps (80-200 per byte) plus rounding, or an arbitrary ratio.
      int64_t units = rep % 3 == 0 ? bytes * (80 + static_cast<int64_t>(rng() % 121)) + static_cast<int64_t>(rng() % 2)
                                   : bytes + static_cast<int64_t>(rng() % static_cast<uint64_t>(bytes * 300));
      if (rep % 7 == 0) units = bytes;  // every floor is an integer quotient
      std::uniform_int_distribution<int64_t> done_of(0, units);
      for (int k = 0; k < 50; ++k) check_at(bytes, units, done_of(rng));
      // Integer quotients: done a multiple of units / gcd.
      for (int64_t m = 0; m <= 8; ++m) check_at(bytes, units, units / 8 * m);
      check_at(bytes, units, units);
      check_at(bytes, units, units - 1);
      ++checked;
    }
  }
  // Products right at the boundaries of the paths.
  for (int64_t limit : {int64_t{1} << 50, int64_t{1} << 62}) {
    for (int64_t bytes : {int64_t{1} << 20, int64_t{3} << 20, int64_t{1000003}}) {
      for (int64_t delta : {-2, -1, 0, 1, 2}) {
        const int64_t units = limit / bytes + delta;
        for (int64_t done : {units, units - 1, units / 2, units / 3, int64_t{1}, int64_t{0}})
          check_at(bytes, units, done);
      }
    }
  }
  CHECK(checked == 2000);
}

TEST_CASE("a pair's pieces add up to its bytes, in proportion to their units") {
  std::mt19937_64 rng(43);
  for (int rep = 0; rep < 2000; ++rep) {
    const int64_t bytes = 1 + static_cast<int64_t>(rng() % (rep % 2 ? (1u << 20) : (1ull << 40)));
    const int64_t units = bytes * (80 + static_cast<int64_t>(rng() % 121)) + static_cast<int64_t>(rng() % 2);
    // Random pieces that add up to the units.
    std::vector<int64_t> pieces;
    for (int64_t left = units; left > 0;) {
      const int64_t p = std::min<int64_t>(left, 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(units / 4 + 1)));
      pieces.push_back(p);
      left -= p;
    }
    ProportionalSplit s = ProportionalSplit::make(bytes, units);
    int64_t total = 0;
    for (int64_t p : pieces) {
      const int64_t b = s.take(p);
      INFO("bytes " << bytes << " units " << units << " piece " << p);
      REQUIRE(b >= 0);
      // Within one byte of the piece's exact share.
      REQUIRE(static_cast<double>(b) <=
              static_cast<double>(p) * static_cast<double>(bytes) / static_cast<double>(units) + 1.0);
      total += b;
    }
    REQUIRE(total == bytes);
  }
}
