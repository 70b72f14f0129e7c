// NcclCommunicator: the Communicator over NCCL. One object drives every GPU of this process (one
// NCCL rank per GPU; each rank is used by one thread, as NCCL requires); ranks of other processes
// (other hosts) join through the TCP rendezvous (comm/tcp_rendezvous.hpp), which hands every
// process the ncclUniqueId.
//
// all_to_all_v runs the plan's phases as grouped ncclSend/ncclRecv, one group per phase, on the
// given (communication) stream: phase p+1 of a rank starts when its phase-p group finished, and a
// group completes only when its peers posted their matching operations of the same phase, so the
// plan's order holds on the wire. A one-phase plan (make_all_at_once_planner, or the Aurora
// planner's choice for small messages) is NCCL's plain all-to-all. The local part is a device copy.
// all_gather is ncclAllGather. Everything is enqueued on the stream: the host must synchronise
// before it reads a result (the CUDA runner records an event and waits for it).
//
// Buffers are device memory of the rank's GPU. Bandwidth can be limited per communicator
// (NcclOptions::max_ctas; NCCL_MAX_NCHANNELS in the environment limits every communicator):
// the heterogeneity emulation of docs/multi_gpu.md. Failures throw kernels::cuda::CudaError
// naming the NCCL call, its result and the rank. abort() aborts every local rank (ncclCommAbort):
// blocked streams complete with an error; the communicator is unusable afterwards.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/runtime/communicator.hpp"
#include "comm/phase_ops.hpp"

namespace aurora::runtime::cuda {

struct NcclOptions {
  int32_t min_ctas = 0;  // 0 = NCCL's default
  int32_t max_ctas = 0;  // 0 = NCCL's default; 1 or 2 limit a communicator's bandwidth
  std::string label = "nccl";
};

class NcclCommunicator final : public Communicator {
 public:
  // This process's GPUs `devices` are ranks [first_rank, first_rank + devices.size()) of `world_size`.
  static Result<std::unique_ptr<NcclCommunicator>> create(const std::vector<int>& devices, int32_t first_rank,
                                                          int32_t world_size, const ncclUniqueId& id,
                                                          const NcclOptions& options = {});
  // Every rank in this process: ranks 0..devices.size()-1.
  static Result<std::unique_ptr<NcclCommunicator>> create_local(const std::vector<int>& devices,
                                                                const NcclOptions& options = {});
  // One process per host (or per GPU group): the rendezvous variables of tcp_rendezvous.hpp; this
  // process's ranks follow those of lower AURORA_RANK.
  static Result<std::unique_ptr<NcclCommunicator>> create_from_env(const std::vector<int>& devices,
                                                                   const NcclOptions& options = {});
  ~NcclCommunicator() override;

  int32_t num_ranks() const override { return world_size_; }
  std::string name() const override { return options_.label; }
  int32_t first_local_rank() const { return first_rank_; }
  int32_t num_local_ranks() const { return static_cast<int32_t>(comms_.size()); }
  int device_of(int32_t rank) const { return devices_[static_cast<size_t>(local(rank))]; }

  // Communicator (streams from the CUDA backend).
  void all_gather(int32_t rank, const void* send, size_t bytes, void* recv, Stream& stream) override;
  void all_to_all_v(int32_t rank, const AllToAllBuffers& buffers, const ExchangePlan& plan, Stream& stream) override;
  void barrier(int32_t rank) override;
  void abort() override;

  // The same on a raw CUDA stream of the rank's device.
  void all_gather(int32_t rank, const void* send, size_t bytes, void* recv, cudaStream_t stream);
  void all_to_all_v(int32_t rank, const AllToAllBuffers& buffers, const ExchangePlan& plan, cudaStream_t stream);

 private:
  NcclCommunicator() = default;
  int32_t local(int32_t rank) const;

  NcclOptions options_;
  int32_t world_size_ = 0;
  int32_t first_rank_ = 0;
  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> barrier_streams_;
  std::vector<int32_t*> barrier_words_;
  std::vector<RankPhaseOps> ops_;  // per local rank (used by that rank's thread only)
  bool aborted_ = false;
};

}  // namespace aurora::runtime::cuda
