#include "aurora/scheduler/traffic.hpp"

#include "aurora/config/check.hpp"

namespace aurora::sched {

TrafficMatrix TrafficMatrix::from_rows(const std::vector<std::vector<int64_t>>& rows) {
  TrafficMatrix m(static_cast<int>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    AURORA_CHECK_MSG(rows[i].size() == rows.size(), "row " << i << " has " << rows[i].size() << " entries");
    for (size_t j = 0; j < rows.size(); ++j) {
      AURORA_CHECK_MSG(rows[i][j] >= 0, "entry [" << i << "][" << j << "] is negative");
      m(static_cast<int>(i), static_cast<int>(j)) = rows[i][j];
    }
  }
  return m;
}

int64_t TrafficMatrix::network_send_bytes(int src) const {
  int64_t sum = 0;
  const int64_t* r = bytes_.data() + static_cast<size_t>(src) * n_;
  for (int j = 0; j < n_; ++j) sum += r[j];
  return sum - r[src];
}

int64_t TrafficMatrix::network_recv_bytes(int dst) const { return total_recv_bytes(dst) - (*this)(dst, dst); }

int64_t TrafficMatrix::total_recv_bytes(int dst) const {
  int64_t sum = 0;
  for (int i = 0; i < n_; ++i) sum += (*this)(i, dst);
  return sum;
}

int64_t TrafficMatrix::network_bytes() const {
  int64_t sum = 0;
  for (int i = 0; i < n_; ++i) sum += network_send_bytes(i);
  return sum;
}

TrafficMatrix TrafficMatrix::transposed() const {
  TrafficMatrix t(n_);
  for (int i = 0; i < n_; ++i)
    for (int j = 0; j < n_; ++j) t(j, i) = (*this)(i, j);
  return t;
}

void TrafficMatrix::assign_zero(int num_gpus) {
  AURORA_CHECK(num_gpus >= 0);
  n_ = num_gpus;
  bytes_.assign(static_cast<size_t>(num_gpus) * static_cast<size_t>(num_gpus), 0);
}

TrafficMatrix& TrafficMatrix::operator+=(const TrafficMatrix& other) {
  AURORA_CHECK_MSG(other.n_ == n_, "size " << other.n_ << " != " << n_);
  for (size_t k = 0; k < bytes_.size(); ++k) bytes_[k] += other.bytes_[k];
  return *this;
}

}  // namespace aurora::sched
