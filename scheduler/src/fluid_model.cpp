#include "fluid_model.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "aurora/config/check.hpp"

namespace aurora::sched::detail {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
// A simulation gives up only when a lower bound exceeds give_up_s by this (relative) margin.
constexpr double kGiveUpMargin = 1e-9;
}  // namespace

void FluidSimulator::reset_ports(int n) {
  words_ = (static_cast<size_t>(n) + 63) / 64;
  adj_.assign(2 * static_cast<size_t>(n) * words_, 0);
  degree_.assign(2 * static_cast<size_t>(n), 0);
  if (recip_.size() <= static_cast<size_t>(n)) {  // 1 / count: shares need no division
    recip_.resize(static_cast<size_t>(n) + 1);
    recip_[0] = kInf;
    for (size_t c = 1; c < recip_.size(); ++c) recip_[c] = 1.0 / static_cast<double>(c);
  }
}

void FluidSimulator::set_flow(int n, int src, int dst, bool on) {
  const size_t s = static_cast<size_t>(src), d = static_cast<size_t>(dst);
  uint64_t* send_row = adj_.data() + s * words_;
  uint64_t* recv_row = adj_.data() + (static_cast<size_t>(n) + d) * words_;
  const uint64_t dbit = uint64_t{1} << (d % 64), sbit = uint64_t{1} << (s % 64);
  send_row[d / 64] = on ? send_row[d / 64] | dbit : send_row[d / 64] & ~dbit;
  recv_row[s / 64] = on ? recv_row[s / 64] | sbit : recv_row[s / 64] & ~sbit;
  const uint32_t delta = on ? 1u : ~0u;
  degree_[s] += delta;
  degree_[static_cast<size_t>(n) + d] += delta;
}

// Progressive filling (water-filling) of the max-min fair allocation on a big switch: every port p has a
// residual capacity and a count of unfrozen flows; repeatedly the port with the smallest share
// residual / count saturates at that level, which freezes its unfrozen flows and charges the level to
// their other ports. A flow's rate is then min(level of its send port, level of its receive port): the
// level at which the first of its ports saturated (a port that never saturates keeps level infinity).
// Send ports are 0..n-1, receive ports n..2n-1. Shares only grow as flows freeze (the frozen level is
// the smallest share), so each port saturates at most once. The active flows are the bits of adj_ (per
// port, a bitset of the other side's GPUs), and a saturating port visits only its still unfrozen flows
// (bits of its row AND the other side's open ports): O(flows + ports^2) per allocation, every flow
// touched once. Fills level_.
void FluidSimulator::water_fill(const Cluster& cluster) {
  ++rate_allocations;
  const int n = cluster.num_gpus();
  const size_t ports = static_cast<size_t>(2 * n);
  const size_t words = words_;
  res_.resize(ports);
  unfrozen_.assign(degree_.begin(), degree_.end());
  for (int g = 0; g < n; ++g) {
    res_[static_cast<size_t>(g)] = cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s;
    res_[static_cast<size_t>(n + g)] = cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s;
  }
  // open_[0..words): send ports not saturated yet; open_[words..2 words): receive ports.
  open_.assign(2 * words, ~uint64_t{0});
  level_.assign(ports, kInf);
  // Ports that may still saturate, as a compact list of (id, share) padded with infinity to a multiple
  // of 4; pos_ maps a port to its slot.
  act_id_.resize(ports + 4);
  act_share_.resize(ports + 4);
  pos_.resize(ports);
  size_t num_act = 0;
  for (size_t p = 0; p < ports; ++p) {
    if (unfrozen_[p] == 0) continue;
    pos_[p] = static_cast<uint32_t>(num_act);
    act_id_[num_act] = static_cast<uint32_t>(p);
    act_share_[num_act++] = res_[p] * recip_[static_cast<size_t>(unfrozen_[p])];
  }
  for (size_t k = num_act; k < num_act + 4; ++k) act_share_[k] = kInf;
  while (num_act > 0) {
    // Smallest share, four independent lanes (the scan is the O(ports^2) term). A port whose flows all
    // froze has share infinity (or NaN when its residual is 0): never the minimum.
    double m0 = kInf, m1 = kInf, m2 = kInf, m3 = kInf;
    for (size_t k = 0; k < num_act; k += 4) {
      m0 = act_share_[k] < m0 ? act_share_[k] : m0;
      m1 = act_share_[k + 1] < m1 ? act_share_[k + 1] : m1;
      m2 = act_share_[k + 2] < m2 ? act_share_[k + 2] : m2;
      m3 = act_share_[k + 3] < m3 ? act_share_[k + 3] : m3;
    }
    const double best_share = std::min(std::min(m0, m1), std::min(m2, m3));
    if (best_share == kInf) break;
    size_t slot = 0;
    while (act_share_[slot] != best_share) ++slot;
    const size_t best = act_id_[slot];
    level_[best] = best_share;
    // Swap-remove the slot.
    --num_act;
    act_id_[slot] = act_id_[num_act];
    act_share_[slot] = act_share_[num_act];
    pos_[act_id_[slot]] = static_cast<uint32_t>(slot);
    act_share_[num_act] = kInf;
    const bool send = best < static_cast<size_t>(n);
    const size_t gpu = send ? best : best - static_cast<size_t>(n);
    uint64_t* own_open = open_.data() + (send ? 0 : words);
    own_open[gpu / 64] &= ~(uint64_t{1} << (gpu % 64));
    const uint64_t* row = adj_.data() + best * words;
    const uint64_t* other_open = open_.data() + (send ? words : 0);
    const size_t base = send ? static_cast<size_t>(n) : 0;
    for (size_t w = 0; w < words; ++w) {
      for (uint64_t bits = row[w] & other_open[w]; bits != 0; bits &= bits - 1) {
        const size_t q = base + w * 64 + static_cast<size_t>(std::countr_zero(bits));
        const double r = res_[q] - best_share;
        const uint32_t c = unfrozen_[q] - 1;
        res_[q] = r;
        unfrozen_[q] = c;
        act_share_[pos_[q]] = std::max(0.0, r) * recip_[c];
      }
    }
  }
}

void FluidSimulator::max_min_rates(std::span<const Transfer> flows, const Cluster& cluster,
                                   std::vector<double>& rates) {
  const int n = cluster.num_gpus();
  reset_ports(n);
  for (const Transfer& t : flows) {
    AURORA_CHECK(t.src_gpu != t.dst_gpu && t.src_gpu >= 0 && t.dst_gpu >= 0 && t.src_gpu < n && t.dst_gpu < n);
    const size_t d = static_cast<size_t>(t.dst_gpu);
    AURORA_CHECK_MSG((adj_[static_cast<size_t>(t.src_gpu) * words_ + d / 64] >> (d % 64) & 1) == 0, "repeated pair");
    set_flow(n, t.src_gpu, t.dst_gpu, true);
  }
  water_fill(cluster);
  rates.resize(flows.size());
  for (size_t k = 0; k < flows.size(); ++k)
    rates[k] =
        std::min(level_[static_cast<size_t>(flows[k].src_gpu)], level_[static_cast<size_t>(n + flows[k].dst_gpu)]);
}

double FluidSimulator::all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster, double min_step_s,
                                     double give_up_s) {
  const int n = cluster.num_gpus();
  const size_t nn = static_cast<size_t>(n) * n;
  const size_t ports = static_cast<size_t>(2 * n);
  pair_bytes_.assign(nn, 0);
  for (const Transfer& t : transfers) {
    if (t.src_gpu == t.dst_gpu) continue;
    pair_bytes_[static_cast<size_t>(t.src_gpu) * n + t.dst_gpu] += t.bytes;
  }
  // Flows sorted by source; adjacency bitsets and per-port flow counts.
  reset_ports(n);
  flows_.clear();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int64_t b = pair_bytes_[static_cast<size_t>(i) * n + j];
      if (b <= 0) continue;
      flows_.push_back(Flow{i, j, static_cast<double>(b), 0, 0});
      set_flow(n, i, j, true);
    }
  // Giving up: port_left_ is the bytes a port still has to move, and a port moves at most its capacity:
  // now + port_left_ / capacity is a lower bound of the end. Each step charges a port the rates allocated
  // to it (its capacity when saturated, else capacity - residual) and gives back what flows that ended
  // inside the step did not use, so the share they leave idle counts (few flows end per step).
  const bool may_give_up = give_up_s < kInf;
  const double give_up_at = give_up_s * (1 + kGiveUpMargin);
  auto port_cap = [&](size_t p) {
    const GpuSpec& g = cluster.gpus[p % static_cast<size_t>(n)];
    return p < static_cast<size_t>(n) ? g.send_bytes_per_s : g.recv_bytes_per_s;
  };
  if (may_give_up) {
    port_left_.assign(ports, 0.0);
    for (const Flow& f : flows_) {
      port_left_[static_cast<size_t>(f.src)] += f.remaining;
      port_left_[static_cast<size_t>(n + f.dst)] += f.remaining;
    }
    double bound = 0;
    for (size_t p = 0; p < ports; ++p) bound = std::max(bound, port_left_[p] / port_cap(p));
    if (bound > give_up_at) return kInf;
  }
  double now = 0, last_end = 0;
  while (!flows_.empty()) {
    water_fill(cluster);
    inv_level_.resize(ports);
    for (size_t p = 0; p < ports; ++p) inv_level_[p] = level_[p] == kInf ? 0.0 : 1.0 / level_[p];
    // Each flow runs at the level of the port that froze it; time to its end at that rate.
    double first = kInf, all = 0;
    for (Flow& f : flows_) {
      const size_t s = static_cast<size_t>(f.src), r = static_cast<size_t>(n + f.dst);
      f.rate = std::min(level_[s], level_[r]);
      f.time = f.remaining * std::max(inv_level_[s], inv_level_[r]);
      first = f.time < first ? f.time : first;
      all = f.time > all ? f.time : all;
    }
    AURORA_CHECK(first > 0 && all < kInf);
    const double dt = std::min(std::max(first, min_step_s), all);
    const double ends_by = dt * (1 + 1e-9);
    size_t kept = 0;
    for (const Flow& f : flows_) {
      // A flow within a billionth (relative) of its end at the step's end finishes in this step.
      if (f.time <= ends_by) {
        last_end = std::max(last_end, now + std::min(f.time, dt));
        set_flow(n, f.src, f.dst, false);
        if (may_give_up) {
          const double unused = f.rate * dt - f.remaining;
          port_left_[static_cast<size_t>(f.src)] += unused;
          port_left_[static_cast<size_t>(n + f.dst)] += unused;
        }
      } else {
        Flow& g = flows_[kept++];
        g = f;
        g.remaining -= f.rate * dt;
      }
    }
    flows_.resize(kept);
    now += dt;
    if (may_give_up && kept > 0) {
      double bound = 0;
      for (size_t p = 0; p < ports; ++p) {
        const double cap = port_cap(p);
        port_left_[p] -= (level_[p] < kInf ? cap : cap - res_[p]) * dt;
        bound = std::max(bound, port_left_[p] / cap);
      }
      if (now + bound > give_up_at) return kInf;
    }
  }
  return last_end;
}

double FluidSimulator::phase_s(std::span<const Transfer> transfers, const Cluster& cluster, bool exact,
                               double latency_s, double give_up_s) {
  double step = 0;
  if (!exact && transfers.size() > kExactFluidMaxFlows) {
    const int n = cluster.num_gpus();
    port_bytes_.assign(static_cast<size_t>(2 * n), 0.0);
    for (const Transfer& t : transfers) {
      port_bytes_[static_cast<size_t>(t.src_gpu)] += static_cast<double>(t.bytes);
      port_bytes_[static_cast<size_t>(n + t.dst_gpu)] += static_cast<double>(t.bytes);
    }
    double bound = 0;
    for (int g = 0; g < n; ++g) {
      bound =
          std::max(bound, port_bytes_[static_cast<size_t>(g)] / cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s);
      bound = std::max(bound,
                       port_bytes_[static_cast<size_t>(n + g)] / cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s);
    }
    step = std::max(bound / kFluidStepsPerBound, latency_s / kStepsPerLatency);
  }
  return all_at_once_s(transfers, cluster, step, give_up_s);
}

// Receiver `dst` after its set of senders changed: every sender has one send at a time, so the max-min
// rates at a receiver are its fair shares capped by the senders' bandwidths, smallest caps first (its
// senders are kept in that order). Sends elsewhere keep their rates.
void FluidSimulator::settle_receiver(int dst, double now, const Cluster& cluster) {
  const int n = cluster.num_gpus();
  const int32_t* list = recv_senders_.data() + static_cast<size_t>(dst) * n;
  const int32_t k = recv_count_[static_cast<size_t>(dst)];
  double cap = cluster.gpus[static_cast<size_t>(dst)].recv_bytes_per_s;
  for (int32_t idx = 0; idx < k; ++idx) {
    const auto g = static_cast<size_t>(list[idx]);
    Sender& s = senders_[g];
    s.left -= s.rate * (now - s.since);
    s.since = now;
    const double share = cap / static_cast<double>(k - idx);
    s.rate = std::min(share, cluster.gpus[g].send_bytes_per_s);
    cap -= s.rate;
    AURORA_CHECK(s.rate > 0);
    key_[g] = now + std::max(0.0, s.left) / s.rate;
  }
}

// Event-driven: an event is a send ending (its receiver's other sends change rate) or a sender's
// latency elapsing (its send joins a receiver). key_[g] is sender g's next event time. O(events * n)
// for the scans of key_, plus O(k) per event for the k senders of each receiver that changed.
double FluidSimulator::streams_s(std::span<const Transfer> transfers,
                                 const std::vector<std::vector<uint32_t>>& queue_of_src, const Cluster& cluster,
                                 double latency_s, double give_up_s) {
  const int n = cluster.num_gpus();
  const size_t un = static_cast<size_t>(n);
  senders_.assign(un, Sender{});
  key_.assign(un + 4, kInf);  // padded for the unrolled scan
  recv_senders_.resize(un * un);
  recv_count_.assign(un, 0);
  recv_dirty_.assign(un, 0);
  dirty_list_.clear();
  recv_unstarted_.assign(un, 0.0);
  // The next send of sender g from queue position k: skips empty and local transfers; consecutive
  // transfers to the same peer (one per model) go out as one send.
  auto next_send = [&](int g, size_t& k, int32_t& dst, double& bytes) {
    const auto& q = queue_of_src[static_cast<size_t>(g)];
    while (k < q.size()) {
      const Transfer& t = transfers[q[k]];
      ++k;
      if (t.bytes <= 0 || t.src_gpu == t.dst_gpu) continue;
      dst = t.dst_gpu;
      bytes = static_cast<double>(t.bytes);
      while (k < q.size() && transfers[q[k]].dst_gpu == t.dst_gpu)
        bytes += static_cast<double>(transfers[q[k++]].bytes);
      return true;
    }
    return false;
  };
  for (int g = 0; g < n; ++g) {
    Sender& s = senders_[static_cast<size_t>(g)];
    size_t k = 0;
    int32_t dst = -1;
    double bytes = 0;
    while (next_send(g, k, dst, bytes)) {
      ++s.unstarted;
      s.unstarted_bytes += bytes;
      recv_unstarted_[static_cast<size_t>(dst)] += bytes;
    }
  }
  auto start_next = [&](int g, double now) {
    Sender& s = senders_[static_cast<size_t>(g)];
    if (next_send(g, s.next, s.wait_dst, s.wait_bytes)) {
      key_[static_cast<size_t>(g)] = now + latency_s;
    } else {
      s.wait_dst = -1;
      key_[static_cast<size_t>(g)] = kInf;
    }
  };
  auto mark = [&](int32_t dst) {
    if (recv_dirty_[static_cast<size_t>(dst)]) return;
    recv_dirty_[static_cast<size_t>(dst)] = 1;
    dirty_list_.push_back(dst);
  };
  for (int g = 0; g < n; ++g) start_next(g, 0);
  const bool may_give_up = give_up_s < kInf;
  const double give_up_at = give_up_s * (1 + kGiveUpMargin);
  double now = 0;
  for (size_t event = 0;; ++event) {
    double m0 = kInf, m1 = kInf, m2 = kInf, m3 = kInf;
    for (size_t g = 0; g < un; g += 4) {
      m0 = key_[g] < m0 ? key_[g] : m0;
      m1 = key_[g + 1] < m1 ? key_[g + 1] : m1;
      m2 = key_[g + 2] < m2 ? key_[g + 2] : m2;
      m3 = key_[g + 3] < m3 ? key_[g + 3] : m3;
    }
    const double next = std::min(std::min(m0, m1), std::min(m2, m3));
    if (next == kInf) break;
    if (may_give_up && event % 16 == 0) {
      // Lower bound of the end: each sender still waits for its unstarted sends and moves its bytes at
      // most at its bandwidth; each receiver takes the bytes still to come to it (unstarted sends and the
      // rest of running ones) at most at its bandwidth.
      double bound = 0;
      recv_left_.assign(recv_unstarted_.begin(), recv_unstarted_.end());
      for (int g = 0; g < n; ++g) {
        const Sender& s = senders_[static_cast<size_t>(g)];
        const GpuSpec& gpu = cluster.gpus[static_cast<size_t>(g)];
        const bool waiting = s.dst < 0 && s.wait_dst >= 0;
        const double lats = static_cast<double>(s.unstarted - (waiting ? 1 : 0)) * latency_s +
                            (waiting ? key_[static_cast<size_t>(g)] - now : 0);
        const double left = s.dst >= 0 ? std::max(0.0, s.left - s.rate * (now - s.since)) : 0.0;
        if (s.dst >= 0) recv_left_[static_cast<size_t>(s.dst)] += left;
        bound = std::max(bound, lats + (s.unstarted_bytes + left) / gpu.send_bytes_per_s);
      }
      for (int g = 0; g < n; ++g)
        bound =
            std::max(bound, recv_left_[static_cast<size_t>(g)] / cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s);
      if (now + bound > give_up_at) return kInf;
    }
    now = std::max(now, next);
    // Sends that end now (within a trillionth, relative) free their receiver; then senders whose latency
    // has elapsed (with zero latency, also those that just ended) start their next send.
    const double due = now * (1 + 1e-12);
    for (int g = 0; g < n; ++g) {
      if (key_[static_cast<size_t>(g)] > due) continue;
      Sender& s = senders_[static_cast<size_t>(g)];
      if (s.dst < 0) continue;
      const int32_t dst = s.dst;
      int32_t* list = recv_senders_.data() + static_cast<size_t>(dst) * un;
      const int32_t k = recv_count_[static_cast<size_t>(dst)]--;
      int32_t pos = 0;
      while (list[pos] != g) ++pos;
      for (; pos + 1 < k; ++pos) list[pos] = list[pos + 1];
      mark(dst);
      s.dst = -1;
      start_next(g, now);
    }
    for (int g = 0; g < n; ++g) {
      if (key_[static_cast<size_t>(g)] > due) continue;
      Sender& s = senders_[static_cast<size_t>(g)];
      if (s.dst >= 0 || s.wait_dst < 0) continue;
      const int32_t dst = s.wait_dst;
      s.dst = dst;
      s.left = s.wait_bytes;
      s.since = now;
      s.rate = 0;
      --s.unstarted;
      s.unstarted_bytes -= s.wait_bytes;
      recv_unstarted_[static_cast<size_t>(dst)] -= s.wait_bytes;
      // Insert by send bandwidth (ties: by GPU index), so that a receiver's shares fill smallest caps first.
      int32_t* list = recv_senders_.data() + static_cast<size_t>(dst) * un;
      int32_t pos = recv_count_[static_cast<size_t>(dst)]++;
      const double bw = cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s;
      while (pos > 0) {
        const int32_t prev = list[pos - 1];
        const double prev_bw = cluster.gpus[static_cast<size_t>(prev)].send_bytes_per_s;
        if (prev_bw < bw || (prev_bw == bw && prev < g)) break;
        list[pos] = prev;
        --pos;
      }
      list[pos] = g;
      mark(dst);
    }
    for (int32_t j : dirty_list_) {
      settle_receiver(j, now, cluster);
      recv_dirty_[static_cast<size_t>(j)] = 0;
    }
    dirty_list_.clear();
  }
  return now;
}

}  // namespace aurora::sched::detail
