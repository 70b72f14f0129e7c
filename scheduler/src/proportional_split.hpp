// Internal: spreads a pair's integer bytes over its pieces in proportion to their integer units (the
// heterogeneous matching plan's picoseconds), so that the pieces' bytes add up exactly. Not a public header.
//
// After pieces of units_done units in all, the pair has sent floor(bytes * units_done / units) bytes: a
// piece gets the increase of that floor, so bytes telescope to the total whatever the piece order.
#pragma once

#include <cstdint>

namespace aurora::sched::detail {

struct ProportionalSplit {
  __extension__ using Int128 = __int128;

  int64_t bytes = 0, units = 0;            // the pair's totals (units > 0 when bytes > 0)
  int64_t units_done = 0, bytes_done = 0;  // over the pieces so far
  double bytes_per_unit = 0;               // bytes / units, negated when bytes * units > 2^50

  static ProportionalSplit make(int64_t bytes, int64_t units) {
    if (bytes == 0) return ProportionalSplit{};
    int64_t product = 0;
    const bool small = !__builtin_mul_overflow(bytes, units, &product) && product <= (int64_t{1} << 50);
    const double ratio = static_cast<double>(bytes) / static_cast<double>(units);
    return ProportionalSplit{bytes, units, 0, 0, small ? ratio : -ratio};
  }

  // The bytes of the next piece, of `piece_units` units (>= 0; they never exceed the total).
  int64_t take(int64_t piece_units) {
    units_done += piece_units;
    const int64_t upto = bytes_upto();
    const int64_t b = upto - bytes_done;
    bytes_done = upto;
    return b;
  }

  // floor(bytes * units_done / units), exactly, without a division (this runs once per piece). When
  // bytes * units <= 2^50, the estimate units_done * (bytes / units) has a relative error below 2^-51,
  // less than the distance of a non-integer quotient to the integers around it (>= 1 / units): it
  // floors to the quotient, or, when the quotient is an integer, possibly to one less; one test fixes
  // that. Larger products: an estimate corrected step by step, or 128-bit arithmetic.
  int64_t bytes_upto() const {
    if (bytes_per_unit >= 0) {
      const auto q = static_cast<int64_t>(static_cast<double>(units_done) * bytes_per_unit);
      return q + static_cast<int64_t>((q + 1) * units <= bytes * units_done);
    }
    int64_t product = 0;
    if (__builtin_mul_overflow(bytes, units_done, &product) || product > (int64_t{1} << 62))
      return static_cast<int64_t>(static_cast<Int128>(bytes) * units_done / units);
    auto q = static_cast<int64_t>(static_cast<double>(units_done) * -bytes_per_unit);
    while (q > 0 && q * units > product) --q;  // no overflow: q * units <= product (1 + 2^-50) + units
    while ((q + 1) * units <= product) ++q;
    return q;
  }
};

}  // namespace aurora::sched::detail
