#include "matching_decomposition.hpp"

#include <algorithm>
#include <bit>

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
  num_staged_ = 0;
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

  // Support bitsets; no column is matched yet.
  words_ = (static_cast<size_t>(n) + 63) / 64;
  support_.assign(static_cast<size_t>(n) * words_, 0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (padded_[static_cast<size_t>(i) * n + j] > 0)
        support_[static_cast<size_t>(i) * words_ + static_cast<size_t>(j) / 64] |= uint64_t{1} << (j % 64);
  free_cols_.assign(words_, 0);
  for (int j = 0; j < n; ++j) free_cols_[static_cast<size_t>(j) / 64] |= uint64_t{1} << (j % 64);
  num_free_cols_ = n;
  seen_.assign(words_, 0);
  cur_real_.assign(static_cast<size_t>(n), 0);
  cur_padded_.assign(static_cast<size_t>(n), 0);

  // A perfect matching on the support (it exists: the padded matrix is L times doubly stochastic).
  match_row_.assign(static_cast<size_t>(n), -1);
  match_col_.assign(static_cast<size_t>(n), -1);
  changed_rows_.clear();
  prev_row_.assign(static_cast<size_t>(n), -1);
  queue_.resize(static_cast<size_t>(n));
  // Greedy start, preferring each row's largest entry, then augmenting paths for the rest.
  for (int i = 0; i < n; ++i) {
    int best = -1;
    for (int j = 0; j < n; ++j) {
      const int64_t v = padded_[static_cast<size_t>(i) * n + j];
      if (v > 0 && match_col_[static_cast<size_t>(j)] < 0 &&
          (best < 0 || v > padded_[static_cast<size_t>(i) * n + best]))
        best = j;
    }
    if (best >= 0) set_match(i, best);
  }
  for (int i = 0; i < n; ++i)
    if (match_row_[static_cast<size_t>(i)] < 0) AURORA_CHECK_MSG(augment(i), "no perfect matching on padded support");

  scratch_.resize(static_cast<size_t>(n));
  piece_of_row_.resize(static_cast<size_t>(n));
  emptied_rows_.resize(static_cast<size_t>(n));
  if (staged_.size() < static_cast<size_t>(n)) staged_.resize(static_cast<size_t>(n));
  const size_t slots = kMergeWindow * static_cast<size_t>(n);
  open_dst_.assign(slots, -1);
  open_src_.assign(slots, -1);
  open_units_.assign(slots, 0);
  open_max_.assign(kMergeWindow, 0);
  int64_t left = bound_;
  while (left > 0) {
    int64_t w = left;
    for (int i = 0; i < n; ++i) w = std::min(w, cur_padded_[static_cast<size_t>(i)]);
    AURORA_CHECK(w > 0);
    add_term(w);
    left -= w;
    if (left == 0) break;
    // Rows whose entry ran out (add_term lists them, ascending) lose their match (the entry leaves the
    // support); then re-match them in that order.
    for (size_t k = 0; k < num_emptied_; ++k) {
      const int i = emptied_rows_[k];
      const int j = match_row_[static_cast<size_t>(i)];
      const size_t idx = static_cast<size_t>(i) * n + j;
      padded_[idx] = 0;
      real_[idx] = cur_real_[static_cast<size_t>(i)];
      support_[static_cast<size_t>(i) * words_ + static_cast<size_t>(j) / 64] &= ~(uint64_t{1} << (j % 64));
      match_row_[static_cast<size_t>(i)] = -1;
      match_col_[static_cast<size_t>(j)] = -1;
      free_cols_[static_cast<size_t>(j) / 64] |= uint64_t{1} << (j % 64);
      ++num_free_cols_;
    }
    for (size_t k = 0; k < num_emptied_; ++k)
      if (!augment_short(emptied_rows_[k]))
        AURORA_CHECK_MSG(augment(emptied_rows_[k]), "no perfect matching on padded support");
  }
  finish();
}

// Matches row to col: writes the row's old entry back to the matrices and caches the new one.
void MatchingDecomposer::set_match(int row, int col) {
  const size_t r = static_cast<size_t>(row), c = static_cast<size_t>(col), n = static_cast<size_t>(n_);
  const int old = match_row_[r];
  if (old >= 0) {
    padded_[r * n + static_cast<size_t>(old)] = cur_padded_[r];
    real_[r * n + static_cast<size_t>(old)] = cur_real_[r];
  }
  if (match_col_[c] < 0) {  // the column was free (otherwise its row is moving on along a path)
    free_cols_[c / 64] &= ~(uint64_t{1} << (c % 64));
    --num_free_cols_;
  }
  match_row_[r] = col;
  match_col_[c] = row;
  changed_rows_.push_back(row);
  cur_padded_[r] = padded_[r * n + c];
  cur_real_[r] = real_[r * n + c];
}

// The common case after peeling a term: row `row` lost its column and exactly one column is free. Try the
// length-3 paths row -> c -> match_col[c] -> free column before a full search.
bool MatchingDecomposer::augment_short(int row) {
  if (num_free_cols_ != 1) return false;
  size_t free_col = 0;
  while (free_cols_[free_col / 64] == 0) free_col += 64;
  free_col += static_cast<size_t>(std::countr_zero(free_cols_[free_col / 64]));
  const size_t free_word = free_col / 64;
  const uint64_t free_bit = uint64_t{1} << (free_col % 64);
  const uint64_t* srow = support_.data() + static_cast<size_t>(row) * words_;
  if (srow[free_word] & free_bit) {
    set_match(row, static_cast<int>(free_col));
    return true;
  }
  for (size_t w = 0; w < words_; ++w)
    for (uint64_t bits = srow[w]; bits != 0; bits &= bits - 1) {
      const int c = static_cast<int>(w * 64) + std::countr_zero(bits);
      const int r = match_col_[static_cast<size_t>(c)];
      if (support_[static_cast<size_t>(r) * words_ + free_word] & free_bit) {
        set_match(r, static_cast<int>(free_col));
        set_match(row, c);
        return true;
      }
    }
  return false;
}

// Breadth-first alternating path from a free row to a free column over the support.
bool MatchingDecomposer::augment(int row) {
  std::fill(seen_.begin(), seen_.end(), 0);
  size_t head = 0, tail = 0;
  queue_[tail++] = row;
  while (head < tail) {
    const int r = queue_[head++];
    const uint64_t* srow = support_.data() + static_cast<size_t>(r) * words_;
    for (size_t w = 0; w < words_; ++w) {
      for (uint64_t bits = srow[w] & ~seen_[w]; bits != 0; bits &= bits - 1) {
        const int c = static_cast<int>(w * 64) + std::countr_zero(bits);
        seen_[w] |= bits & (~bits + 1);
        prev_row_[static_cast<size_t>(c)] = r;
        if (match_col_[static_cast<size_t>(c)] < 0) {
          for (int col = c;;) {
            const int pr = prev_row_[static_cast<size_t>(col)];
            const int old = match_row_[static_cast<size_t>(pr)];
            set_match(pr, col);
            if (pr == row) return true;
            col = old;
          }
        }
        queue_[tail++] = match_col_[static_cast<size_t>(c)];
      }
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
  PhasePiece* pieces = scratch_.data();
  int32_t* piece_of_row = piece_of_row_.data();
  int32_t* emptied = emptied_rows_.data();
  size_t num_pieces = 0, num_emptied = 0;
  for (int i = 0; i < n; ++i) {
    const auto r = static_cast<size_t>(i);
    const int64_t real = std::min(w, cur_real_[r]);  // >= 0; 0 when the entry is padding only
    pieces[num_pieces] = PhasePiece{i, match_row_[r], real};
    piece_of_row[r] = real > 0 ? static_cast<int32_t>(num_pieces) : -1;
    num_pieces += real > 0;
    cur_real_[r] -= real;
    const int64_t padded = cur_padded_[r] - w;
    cur_padded_[r] = padded;
    emptied[num_emptied] = i;
    num_emptied += padded == 0;
  }
  num_emptied_ = num_emptied;
  if (num_pieces == 0) {  // pure padding: idle time that the real plan skips
    changed_rows_.clear();
    return;
  }

  const size_t nn = static_cast<size_t>(n);
  auto conflicts = [](const PhasePiece& piece, const int32_t* dst_of, const int32_t* src_of) {
    const int32_t d = dst_of[piece.src], s = src_of[piece.dst];
    return (d >= 0 && d != piece.dst) || (s >= 0 && s != piece.src);
  };
  size_t target = num_open_;
  const size_t lo = num_open_ > kMergeWindow ? num_open_ - kMergeWindow : 0;
  for (size_t p = num_open_; p-- > lo;) {
    const size_t slot = p % kMergeWindow;
    const int32_t* dst_of = open_dst_.data() + slot * nn;
    const int32_t* src_of = open_src_.data() + slot * nn;
    bool ok = true;
    for (const int32_t row : changed_rows_) {
      const int32_t k = piece_of_row[static_cast<size_t>(row)];
      if (k >= 0 && conflicts(pieces[k], dst_of, src_of)) {
        ok = false;
        break;
      }
    }
    for (size_t k = 0; ok && k < num_pieces; ++k) ok = !conflicts(pieces[k], dst_of, src_of);
    if (ok) {
      target = p;
      break;
    }
  }
  changed_rows_.clear();
  if (target == num_open_) {
    if (num_open_ >= kMergeWindow) flush(num_open_ % kMergeWindow);
    ++num_open_;
    open_max_[target % kMergeWindow] = 0;
  }
  const size_t slot = target % kMergeWindow;
  int32_t* dst_of = open_dst_.data() + slot * nn;
  int32_t* src_of = open_src_.data() + slot * nn;
  int64_t* units_of = open_units_.data() + slot * nn;
  int64_t longest = open_max_[slot];
  for (size_t k = 0; k < num_pieces; ++k) {
    const int32_t src = pieces[k].src, dst = pieces[k].dst;
    const int64_t units = units_of[src] + pieces[k].units;
    dst_of[src] = dst;
    src_of[dst] = src;
    units_of[src] = units;
    longest = std::max(longest, units);
  }
  open_max_[slot] = longest;
}

// Writes the phase in `slot` out (pieces by sender) and empties the slot.
void MatchingDecomposer::flush(size_t slot) {
  const size_t nn = static_cast<size_t>(n_);
  int32_t* dst_of = open_dst_.data() + slot * nn;
  int32_t* src_of = open_src_.data() + slot * nn;
  int64_t* units_of = open_units_.data() + slot * nn;
  staged_max_.push_back(open_max_[slot]);
  if (staged_.size() < num_staged_ + nn) staged_.resize(std::max(staged_.size() * 2, num_staged_ + nn));
  PhasePiece* out = staged_.data() + num_staged_;
  size_t m = 0;
  for (size_t s = 0; s < nn; ++s) {
    const int32_t d = dst_of[s];
    out[m] = PhasePiece{static_cast<int32_t>(s), d, units_of[s]};
    m += d >= 0;
    dst_of[s] = -1;
    units_of[s] = 0;
  }
  std::fill(src_of, src_of + nn, -1);
  num_staged_ += m;
  staged_begin_.push_back(static_cast<uint32_t>(num_staged_));
}

void MatchingDecomposer::finish() {
  // The open phases, oldest first, then every phase by its longest piece (stable: ties keep their order).
  const size_t first_open = num_open_ > kMergeWindow ? num_open_ - kMergeWindow : 0;
  for (size_t p = first_open; p < num_open_; ++p) flush(p % kMergeWindow);
  const size_t phases = staged_max_.size();
  sort_keys_.resize(phases);
  for (size_t p = 0; p < phases; ++p) sort_keys_[p] = SortKey{staged_max_[p], static_cast<uint32_t>(p)};
  std::sort(sort_keys_.begin(), sort_keys_.end(),
            [](const SortKey& a, const SortKey& b) { return a.max > b.max || (a.max == b.max && a.phase < b.phase); });
  order_.resize(phases);
  phase_max_.resize(phases);
  for (size_t k = 0; k < phases; ++k) {
    order_[k] = sort_keys_[k].phase;
    phase_max_[k] = sort_keys_[k].max;
  }
}

}  // namespace aurora::sched::detail
