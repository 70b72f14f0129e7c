#include "matching_decomposition.hpp"

#include <algorithm>
#include <numeric>

#include "aurora/config/check.hpp"

namespace aurora::sched::detail {
namespace {
// How many recent phases a new term may be merged into. Larger finds more merges, costs O(window * n).
constexpr size_t kMergeWindow = 8;
}  // namespace

void MatchingDecomposer::decompose(const std::vector<int64_t>& units, int n) {
  n_ = n;
  const size_t nn = static_cast<size_t>(n) * n;
  AURORA_CHECK(units.size() >= nn);
  real_.assign(units.begin(), units.begin() + static_cast<std::ptrdiff_t>(nn));
  for (int i = 0; i < n; ++i) real_[static_cast<size_t>(i) * n + i] = 0;

  // Row and column sums; the bound L is the largest.
  std::vector<int64_t>& pad_row = open_units_;  // borrowed as scratch before merging starts
  pad_row.assign(static_cast<size_t>(2 * n), 0);
  int64_t* row_sum = pad_row.data();
  int64_t* col_sum = pad_row.data() + n;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int64_t u = real_[static_cast<size_t>(i) * n + j];
      AURORA_CHECK(u >= 0);
      row_sum[i] += u;
      col_sum[j] += u;
    }
  bound_ = 0;
  for (int k = 0; k < 2 * n; ++k) bound_ = std::max(bound_, pad_row[static_cast<size_t>(k)]);

  order_.clear();
  phase_max_.clear();
  staged_.clear();
  staged_begin_.assign(1, 0);
  staged_max_.clear();
  num_open_ = 0;
  if (bound_ == 0) return;

  // Pad to every row and column summing to L: first on the diagonal (idle time, adds no new pairs), then
  // north-west-corner fill of the remaining deficits (adds at most 2n - 1 entries).
  padded_ = real_;
  for (int k = 0; k < 2 * n; ++k) pad_row[static_cast<size_t>(k)] = bound_ - pad_row[static_cast<size_t>(k)];
  int64_t* row_def = row_sum;
  int64_t* col_def = col_sum;
  for (int i = 0; i < n; ++i) {
    const int64_t x = std::min(row_def[i], col_def[i]);
    padded_[static_cast<size_t>(i) * n + i] += x;
    row_def[i] -= x;
    col_def[i] -= x;
  }
  for (int i = 0, j = 0; i < n && j < n;) {
    const int64_t x = std::min(row_def[i], col_def[j]);
    padded_[static_cast<size_t>(i) * n + j] += x;
    row_def[i] -= x;
    col_def[j] -= x;
    if (row_def[i] == 0) ++i;
    if (j < n && col_def[j] == 0) ++j;
  }

  // A perfect matching on the support (it exists: the padded matrix is L times doubly stochastic).
  match_row_.assign(static_cast<size_t>(n), -1);
  match_col_.assign(static_cast<size_t>(n), -1);
  prev_row_.assign(static_cast<size_t>(n), -1);
  queue_.resize(static_cast<size_t>(n));
  seen_.assign(static_cast<size_t>(n), 0);
  stamp_ = 0;
  // Greedy start, preferring each row's largest entry, then augmenting paths for the rest.
  for (int i = 0; i < n; ++i) {
    int best = -1;
    for (int j = 0; j < n; ++j) {
      const int64_t v = padded_[static_cast<size_t>(i) * n + j];
      if (v > 0 && match_col_[static_cast<size_t>(j)] < 0 &&
          (best < 0 || v > padded_[static_cast<size_t>(i) * n + best]))
        best = j;
    }
    if (best >= 0) {
      match_row_[static_cast<size_t>(i)] = best;
      match_col_[static_cast<size_t>(best)] = i;
    }
  }
  for (int i = 0; i < n; ++i)
    if (match_row_[static_cast<size_t>(i)] < 0) AURORA_CHECK_MSG(augment(i), "no perfect matching on padded support");

  const size_t slots = kMergeWindow * static_cast<size_t>(n);
  open_dst_.assign(slots, -1);
  open_src_.assign(slots, -1);
  open_units_.assign(slots, 0);
  open_max_.assign(kMergeWindow, 0);
  int64_t left = bound_;
  while (left > 0) {
    int64_t w = left;
    for (int i = 0; i < n; ++i) {
      const int j = match_row_[static_cast<size_t>(i)];
      w = std::min(w, padded_[static_cast<size_t>(i) * n + j]);
    }
    AURORA_CHECK(w > 0);
    add_term(w);
    left -= w;
    if (left == 0) break;
    for (int i = 0; i < n; ++i) {
      const int j = match_row_[static_cast<size_t>(i)];
      if (padded_[static_cast<size_t>(i) * n + j] == 0) {
        match_row_[static_cast<size_t>(i)] = -1;
        match_col_[static_cast<size_t>(j)] = -1;
      }
    }
    for (int i = 0; i < n; ++i)
      if (match_row_[static_cast<size_t>(i)] < 0 && !augment_short(i))
        AURORA_CHECK_MSG(augment(i), "no perfect matching on padded support");
  }
  finish();
}

// The common case after peeling a term: row `row` lost its column and exactly one column is free. Try the
// length-3 paths row -> c -> match_col[c] -> free column before a full search.
bool MatchingDecomposer::augment_short(int row) {
  const int n = n_;
  int free_col = -1;
  for (int c = 0; c < n; ++c)
    if (match_col_[static_cast<size_t>(c)] < 0) {
      if (free_col >= 0) return false;
      free_col = c;
    }
  if (free_col < 0) return false;
  const int64_t* prow = padded_.data() + static_cast<size_t>(row) * n;
  if (prow[free_col] > 0) {
    match_row_[static_cast<size_t>(row)] = free_col;
    match_col_[static_cast<size_t>(free_col)] = row;
    return true;
  }
  for (int c = 0; c < n; ++c) {
    if (prow[c] <= 0) continue;
    const int r = match_col_[static_cast<size_t>(c)];
    if (padded_[static_cast<size_t>(r) * n + free_col] > 0) {
      match_row_[static_cast<size_t>(r)] = free_col;
      match_col_[static_cast<size_t>(free_col)] = r;
      match_row_[static_cast<size_t>(row)] = c;
      match_col_[static_cast<size_t>(c)] = row;
      return true;
    }
  }
  return false;
}

// Breadth-first alternating path from a free row to a free column over the positive entries.
bool MatchingDecomposer::augment(int row) {
  const int n = n_;
  if (++stamp_ == 0) {
    std::fill(seen_.begin(), seen_.end(), 0);
    stamp_ = 1;
  }
  size_t head = 0, tail = 0;
  queue_[tail++] = row;
  while (head < tail) {
    const int r = queue_[head++];
    const int64_t* prow = padded_.data() + static_cast<size_t>(r) * n;
    for (int c = 0; c < n; ++c) {
      if (prow[c] <= 0 || seen_[static_cast<size_t>(c)] == stamp_) continue;
      seen_[static_cast<size_t>(c)] = stamp_;
      prev_row_[static_cast<size_t>(c)] = r;
      if (match_col_[static_cast<size_t>(c)] < 0) {
        for (int col = c;;) {
          const int pr = prev_row_[static_cast<size_t>(col)];
          const int old = match_row_[static_cast<size_t>(pr)];
          match_row_[static_cast<size_t>(pr)] = col;
          match_col_[static_cast<size_t>(col)] = pr;
          if (pr == row) return true;
          col = old;
        }
      }
      queue_[tail++] = match_col_[static_cast<size_t>(c)];
    }
  }
  return false;
}

// Subtracts the current matching with weight w and records its real pieces, merged into a recent phase
// when the union is still a matching (merging can only shorten: max of sums <= sum of maxes). Only the
// last kMergeWindow phases can take merges: they live in a ring of dense slots (receiver and units of
// each sender, sender of each receiver); a phase leaving the window is written out.
void MatchingDecomposer::add_term(int64_t w) {
  const int n = n_;
  scratch_.clear();
  for (int i = 0; i < n; ++i) {
    const int j = match_row_[static_cast<size_t>(i)];
    const size_t idx = static_cast<size_t>(i) * n + j;
    const int64_t real = std::min(w, real_[idx]);
    if (real > 0) {
      scratch_.push_back(PhasePiece{i, j, real});
      real_[idx] -= real;
    }
    padded_[idx] -= w;
  }
  if (scratch_.empty()) return;  // pure padding: idle time that the real plan skips

  const size_t nn = static_cast<size_t>(n);
  size_t target = num_open_;
  const size_t lo = num_open_ > kMergeWindow ? num_open_ - kMergeWindow : 0;
  for (size_t p = num_open_; p-- > lo;) {
    const size_t slot = p % kMergeWindow;
    const int32_t* dst_of = open_dst_.data() + slot * nn;
    const int32_t* src_of = open_src_.data() + slot * nn;
    bool ok = true;
    for (const PhasePiece& piece : scratch_) {
      const int32_t d = dst_of[piece.src], s = src_of[piece.dst];
      if ((d >= 0 && d != piece.dst) || (s >= 0 && s != piece.src)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      target = p;
      break;
    }
  }
  if (target == num_open_) {
    if (num_open_ >= kMergeWindow) flush(num_open_ % kMergeWindow);
    ++num_open_;
    open_max_[target % kMergeWindow] = 0;
  }
  const size_t slot = target % kMergeWindow;
  int32_t* dst_of = open_dst_.data() + slot * nn;
  int32_t* src_of = open_src_.data() + slot * nn;
  int64_t* units_of = open_units_.data() + slot * nn;
  for (const PhasePiece& piece : scratch_) {
    dst_of[piece.src] = piece.dst;
    src_of[piece.dst] = piece.src;
    units_of[piece.src] += piece.units;
    open_max_[slot] = std::max(open_max_[slot], units_of[piece.src]);
  }
}

// Writes the phase in `slot` out (pieces by sender) and empties the slot.
void MatchingDecomposer::flush(size_t slot) {
  const size_t nn = static_cast<size_t>(n_);
  int32_t* dst_of = open_dst_.data() + slot * nn;
  int32_t* src_of = open_src_.data() + slot * nn;
  int64_t* units_of = open_units_.data() + slot * nn;
  staged_max_.push_back(open_max_[slot]);
  for (size_t s = 0; s < nn; ++s) {
    const int32_t d = dst_of[s];
    if (d < 0) continue;
    staged_.push_back(PhasePiece{static_cast<int32_t>(s), d, units_of[s]});
    dst_of[s] = -1;
    src_of[static_cast<size_t>(d)] = -1;
    units_of[s] = 0;
  }
  staged_begin_.push_back(static_cast<uint32_t>(staged_.size()));
}

void MatchingDecomposer::finish() {
  // The open phases, oldest first, then every phase by its longest piece (stable: ties keep their order).
  const size_t first_open = num_open_ > kMergeWindow ? num_open_ - kMergeWindow : 0;
  for (size_t p = first_open; p < num_open_; ++p) flush(p % kMergeWindow);
  const size_t phases = staged_max_.size();
  order_.resize(phases);
  std::iota(order_.begin(), order_.end(), 0u);
  std::stable_sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) { return staged_max_[a] > staged_max_[b]; });
  phase_max_.resize(phases);
  for (size_t k = 0; k < phases; ++k) phase_max_[k] = staged_max_[order_[k]];
}

}  // namespace aurora::sched::detail
