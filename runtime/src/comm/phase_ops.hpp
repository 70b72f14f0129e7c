// RankPhaseOps: one rank's share of an ExchangePlan as point-to-point operations, phase by phase:
// exactly what a grouped ncclSend/ncclRecv per phase issues (NCCL communicator), and what the
// tests replay on the CPU to prove that every rank's sends meet a matching receive in the same
// phase and that the bytes land where the offsets say.
//
// Contract: a plan's transfer (src, dst, bytes) becomes a send on src and a receive on dst, in the
// same phase, both covering the next `bytes` of that pair's part (pieces of one pair go in plan
// order). build_rank_phase_ops() checks (AURORA_CHECK) that the plan covers each of the rank's
// off-diagonal parts exactly. Phases without an operation of this rank keep an empty range (the
// rank skips them; NCCL needs no empty group). Value type; reuses its vectors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "aurora/runtime/exchange_plan.hpp"

namespace aurora::runtime {

struct P2pOp {
  int32_t peer = 0;
  bool send = false;   // send to peer, else receive from peer
  int64_t offset = 0;  // byte offset into this rank's send (send) or receive (receive) buffer
  int64_t bytes = 0;
};

struct RankPhaseOps {
  std::vector<uint32_t> phase_begin;  // [num_phases + 1]: ops of phase p are [begin[p], begin[p+1])
  std::vector<P2pOp> ops;
  int64_t local_bytes = 0;  // the rank's own part (copied locally, never on the wire)
  int64_t local_send_offset = 0;
  int64_t local_recv_offset = 0;

  size_t num_phases() const { return phase_begin.empty() ? 0 : phase_begin.size() - 1; }
  std::span<const P2pOp> phase(size_t p) const {
    return {ops.data() + phase_begin[p], static_cast<size_t>(phase_begin[p + 1] - phase_begin[p])};
  }
};

// send_offsets / recv_offsets as in AllToAllBuffers ([num_ranks + 1] bytes).
void build_rank_phase_ops(const ExchangePlan& plan, int32_t rank, int32_t num_ranks, const int64_t* send_offsets,
                          const int64_t* recv_offsets, RankPhaseOps& out);

}  // namespace aurora::runtime
