// TrafficMatrix: bytes that GPU i sends to GPU j in one all-to-all (dispatch or combine).
//
// Contract: a dense n x n matrix of non-negative integer byte counts, row = source GPU, column =
// destination GPU. The diagonal is local traffic: it is stored (so that a GPU's expert work can be
// computed from it) but never crosses the network, so every sum named *_network_* ignores it.
// Integer bytes make "the plan hits the bound exactly" an exact statement.
// Value type; not thread-safe for concurrent mutation; resize()/assign_zero() reuse storage.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace aurora::sched {

class TrafficMatrix {
 public:
  TrafficMatrix() = default;
  explicit TrafficMatrix(int num_gpus) { assign_zero(num_gpus); }
  // Rows must all have rows.size() entries, each >= 0 (AURORA_CHECK otherwise: validate input in config/).
  static TrafficMatrix from_rows(const std::vector<std::vector<int64_t>>& rows);

  int num_gpus() const { return n_; }
  int64_t operator()(int src, int dst) const { return bytes_[static_cast<size_t>(src) * n_ + dst]; }
  int64_t& operator()(int src, int dst) { return bytes_[static_cast<size_t>(src) * n_ + dst]; }
  std::span<const int64_t> row(int src) const { return {bytes_.data() + static_cast<size_t>(src) * n_, size_t(n_)}; }
  const std::vector<int64_t>& data() const { return bytes_; }

  // Bytes GPU src sends to other GPUs (diagonal excluded).
  int64_t network_send_bytes(int src) const;
  // Bytes GPU dst receives from other GPUs (diagonal excluded).
  int64_t network_recv_bytes(int dst) const;
  // Sum of all off-diagonal entries.
  int64_t network_bytes() const;
  // Everything that lands on GPU dst, local traffic included (the work of the experts there).
  int64_t total_recv_bytes(int dst) const;

  TrafficMatrix transposed() const;
  // Sets every entry to zero and the size to num_gpus, reusing the allocation.
  void assign_zero(int num_gpus);
  TrafficMatrix& operator+=(const TrafficMatrix& other);  // sizes must match
  bool operator==(const TrafficMatrix& other) const = default;

 private:
  int n_ = 0;
  std::vector<int64_t> bytes_;
};

}  // namespace aurora::sched
