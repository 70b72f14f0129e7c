// Internal: decomposition of a non-negative integer matrix into perfect-matching phases that meets
// max(row sum, column sum) exactly (pad to a scaled doubly stochastic matrix, then peel off perfect
// matchings, Birkhoff-von Neumann style), with compatible phases merged. Not a public header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace aurora::sched::detail {

struct PhasePiece {
  int32_t src;
  int32_t dst;
  int64_t units;
};

class MatchingDecomposer {
 public:
  // units: n x n row-major, entries >= 0, diagonal ignored. Produces phases in which every src and
  // every dst appears at most once; per pair the units over all phases add up to the input entry;
  // the sum over phases of the largest piece equals max(row sum, column sum) of the input.
  // Phases are sorted by their largest piece, descending.
  void decompose(const std::vector<int64_t>& units, int n);

  size_t num_phases() const { return order_.size(); }
  size_t num_pieces() const { return num_staged_; }
  const PhasePiece* phase_begin(size_t k) const { return staged_.data() + staged_begin_[order_[k]]; }
  const PhasePiece* phase_end(size_t k) const { return staged_.data() + staged_begin_[order_[k] + 1]; }
  int64_t phase_units(size_t k) const { return phase_max_[k]; }
  int64_t bound_units() const { return bound_; }

 private:
  bool augment(int row);
  bool augment_short(int row);
  void set_match(int row, int col);
  void add_term(int64_t weight);
  void finish();

  int n_ = 0;
  int64_t bound_ = 0;
  // The matrices (row-major). Entries of the current matching live in cur_real_ / cur_padded_ (dense, by
  // row: the per-term loops stream through them) and are written back when a row changes its match.
  std::vector<int64_t> real_, padded_;
  std::vector<int64_t> cur_real_, cur_padded_;
  // Support of the padded matrix: per row, words_ 64-bit words with bit c set while padded(row, c) > 0
  // (entries only decrease, so bits are only cleared). Augmenting paths search these bitsets.
  size_t words_ = 0;
  std::vector<uint64_t> support_, seen_, free_cols_;
  int num_free_cols_ = 0;
  std::vector<int32_t> match_row_, match_col_, prev_row_, queue_;
  void flush(size_t slot);
  // The last kMergeWindow phases, which may still take merges: a ring of dense slots (dst of each src,
  // units of each src, src of each dst). Phases written out so far: staged_*.
  std::vector<int32_t> open_dst_, open_src_;
  std::vector<int64_t> open_units_;
  std::vector<int64_t> open_max_;
  size_t num_open_ = 0;             // phases so far, written out or open
  std::vector<PhasePiece> staged_;  // the first num_staged_ are written; room for one more phase
  size_t num_staged_ = 0;
  std::vector<uint32_t> staged_begin_;  // staged phase p: staged_[staged_begin_[p], staged_begin_[p + 1])
  std::vector<int64_t> staged_max_;
  // The term being added: its real pieces (by row), and for each row the index of its piece or -1.
  std::vector<PhasePiece> scratch_;
  std::vector<int32_t> piece_of_row_;
  std::vector<int32_t> emptied_rows_;  // rows whose matched entry the term used up, ascending
  size_t num_emptied_ = 0;
  // Rows matched anew since the previous term: a term conflicts with recent phases mostly there, so the
  // merge test looks at them first.
  std::vector<int32_t> changed_rows_;
  // Output: phase k is staged phase order_[k]; phase_max_[k] its largest piece.
  struct SortKey {
    int64_t max;
    uint32_t phase;
  };
  std::vector<SortKey> sort_keys_;
  std::vector<int64_t> phase_max_;
  std::vector<uint32_t> order_;
};

}  // namespace aurora::sched::detail
