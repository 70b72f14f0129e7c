#include "comm/phase_ops.hpp"

#include "aurora/config/check.hpp"

namespace aurora::runtime {

void build_rank_phase_ops(const ExchangePlan& plan, int32_t rank, int32_t num_ranks, const int64_t* send_offsets,
                          const int64_t* recv_offsets, RankPhaseOps& out) {
  AURORA_CHECK(rank >= 0 && rank < num_ranks);
  out.ops.clear();
  out.phase_begin.assign(1, 0);
  // Bytes of each pair already covered by earlier pieces (sent to peer, received from peer).
  thread_local std::vector<int64_t> sent, received;
  sent.assign(static_cast<size_t>(num_ranks), 0);
  received.assign(static_cast<size_t>(num_ranks), 0);
  for (const auto& phase : plan.phases) {
    for (const Transfer& t : phase) {
      AURORA_CHECK_MSG(
          t.src >= 0 && t.src < num_ranks && t.dst >= 0 && t.dst < num_ranks && t.src != t.dst && t.bytes > 0,
          "plan transfer " << t.src << "->" << t.dst << " of " << t.bytes << " bytes");
      if (t.src == rank) {
        int64_t& done = sent[static_cast<size_t>(t.dst)];
        out.ops.push_back(P2pOp{t.dst, true, send_offsets[t.dst] + done, t.bytes});
        done += t.bytes;
      } else if (t.dst == rank) {
        int64_t& done = received[static_cast<size_t>(t.src)];
        out.ops.push_back(P2pOp{t.src, false, recv_offsets[t.src] + done, t.bytes});
        done += t.bytes;
      }
    }
    out.phase_begin.push_back(static_cast<uint32_t>(out.ops.size()));
  }
  for (int32_t o = 0; o < num_ranks; ++o) {
    if (o == rank) continue;
    const int64_t send_part = send_offsets[o + 1] - send_offsets[o];
    const int64_t recv_part = recv_offsets[o + 1] - recv_offsets[o];
    AURORA_CHECK_MSG(sent[static_cast<size_t>(o)] == send_part,
                     "rank " << rank << ": the plan sends " << sent[static_cast<size_t>(o)] << " bytes to rank " << o
                             << ", the buffer holds " << send_part);
    AURORA_CHECK_MSG(received[static_cast<size_t>(o)] == recv_part,
                     "rank " << rank << ": the plan brings " << received[static_cast<size_t>(o)] << " bytes from rank "
                             << o << ", the buffer expects " << recv_part);
  }
  out.local_send_offset = send_offsets[rank];
  out.local_recv_offset = recv_offsets[rank];
  out.local_bytes = send_offsets[rank + 1] - send_offsets[rank];
  AURORA_CHECK_MSG(out.local_bytes == recv_offsets[rank + 1] - recv_offsets[rank],
                   "rank " << rank << ": local part of " << out.local_bytes << " bytes, receive buffer expects "
                           << recv_offsets[rank + 1] - recv_offsets[rank]);
}

}  // namespace aurora::runtime
