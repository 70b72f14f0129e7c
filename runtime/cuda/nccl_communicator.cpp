#include "nccl_communicator.hpp"

#include <cstring>
#include <sstream>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "comm/tcp_rendezvous.hpp"
#include "cuda_backend.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

namespace {

[[noreturn]] void throw_nccl(const char* call, ncclResult_t r, const std::string& where, ncclComm_t comm) {
  std::ostringstream msg;
  msg << "NCCL call " << call << " failed on " << where << ": " << ncclGetErrorString(r);
  if (const char* last = comm ? ncclGetLastError(comm) : ncclGetLastError(nullptr); last && *last)
    msg << " (" << last << ")";
  throw kc::CudaError(msg.str());
}

#define AURORA_NCCL_CHECK(call, where, comm)                                                         \
  do {                                                                                               \
    const ncclResult_t aurora_nccl_status_ = (call);                                                 \
    if (aurora_nccl_status_ != ncclSuccess) throw_nccl(#call, aurora_nccl_status_, (where), (comm)); \
  } while (0)

std::string rank_name(int32_t rank, int device) {
  return "rank " + std::to_string(rank) + " (cuda:" + std::to_string(device) + ")";
}

}  // namespace

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(const std::vector<int>& devices, int32_t first_rank,
                                                                   int32_t world_size, const ncclUniqueId& id,
                                                                   const NcclOptions& options) {
  if (devices.empty()) return Error::invalid("devices", "must not be empty");
  if (first_rank < 0 || first_rank + static_cast<int32_t>(devices.size()) > world_size) {
    return Error::invalid("ranks", "local ranks [" + std::to_string(first_rank) + ", " +
                                       std::to_string(first_rank + static_cast<int32_t>(devices.size())) +
                                       ") exceed the world size " + std::to_string(world_size));
  }
  std::unique_ptr<NcclCommunicator> c(new NcclCommunicator());
  c->options_ = options;
  c->world_size_ = world_size;
  c->first_rank_ = first_rank;
  c->devices_ = devices;
  c->comms_.assign(devices.size(), nullptr);
  c->ops_.resize(devices.size());
  auto made = capture_errors([&] {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;
    if (options.min_ctas > 0) config.minCTAs = options.min_ctas;
    if (options.max_ctas > 0) config.maxCTAs = options.max_ctas;
    // One thread creates several ranks: the inits must be grouped.
    AURORA_NCCL_CHECK(ncclGroupStart(), "init", nullptr);
    for (size_t i = 0; i < devices.size(); ++i) {
      AURORA_CUDA_CHECK(cudaSetDevice(devices[i]));
      const ncclResult_t r =
          ncclCommInitRankConfig(&c->comms_[i], world_size, id, first_rank + static_cast<int32_t>(i), &config);
      if (r != ncclSuccess) {
        ncclGroupEnd();
        throw_nccl("ncclCommInitRankConfig", r, rank_name(first_rank + static_cast<int32_t>(i), devices[i]), nullptr);
      }
    }
    AURORA_NCCL_CHECK(ncclGroupEnd(), "init", nullptr);
    for (size_t i = 0; i < devices.size(); ++i) {
      AURORA_CUDA_CHECK(cudaSetDevice(devices[i]));
      cudaStream_t s = nullptr;
      AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      c->barrier_streams_.push_back(s);
      int32_t* word = nullptr;
      AURORA_CUDA_CHECK(cudaMalloc(&word, sizeof(int32_t)));
      AURORA_CUDA_CHECK(cudaMemset(word, 0, sizeof(int32_t)));
      c->barrier_words_.push_back(word);
    }
  });
  if (!made) return made.error();
  return c;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create_local(const std::vector<int>& devices,
                                                                         const NcclOptions& options) {
  ncclUniqueId id;
  if (const ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
    return Error::make(ErrorCode::kUnavailable, std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
  }
  return create(devices, 0, static_cast<int32_t>(devices.size()), id, options);
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create_from_env(const std::vector<int>& devices,
                                                                            const NcclOptions& options) {
  auto ro = rendezvous_options_from_env();
  if (!ro) return ro.error();
  std::vector<std::byte> blob;
  if (ro->rank == 0) {
    ncclUniqueId id;
    if (const ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
      return Error::make(ErrorCode::kUnavailable, std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
    }
    blob.resize(sizeof(id));
    std::memcpy(blob.data(), &id, sizeof(id));
  }
  auto met = rendezvous(*ro, blob, static_cast<int32_t>(devices.size()));
  if (!met) return met.error();
  if (met->blob.size() != sizeof(ncclUniqueId)) {
    return Error::make(ErrorCode::kInternal,
                       "rendezvous: the unique id has " + std::to_string(met->blob.size()) + " bytes");
  }
  ncclUniqueId id;
  std::memcpy(&id, met->blob.data(), sizeof(id));
  int32_t first = 0, world = 0;
  for (int32_t r = 0; r < ro->world_size; ++r) {
    if (r < ro->rank) first += met->local_counts[static_cast<size_t>(r)];
    world += met->local_counts[static_cast<size_t>(r)];
  }
  return create(devices, first, world, id, options);
}

NcclCommunicator::~NcclCommunicator() {
  for (size_t i = 0; i < comms_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    if (comms_[i]) {
      if (aborted_) {
        ncclCommAbort(comms_[i]);
      } else {
        ncclCommDestroy(comms_[i]);
      }
    }
  }
  for (size_t i = 0; i < barrier_streams_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    cudaStreamDestroy(barrier_streams_[i]);
    cudaFree(barrier_words_[i]);
  }
}

int32_t NcclCommunicator::local(int32_t rank) const {
  const int32_t i = rank - first_rank_;
  AURORA_CHECK_MSG(i >= 0 && i < static_cast<int32_t>(comms_.size()),
                   "rank " << rank << " is not one of this process's ranks [" << first_rank_ << ", "
                           << first_rank_ + static_cast<int32_t>(comms_.size()) << ")");
  return i;
}

void NcclCommunicator::all_gather(int32_t rank, const void* send, size_t bytes, void* recv, cudaStream_t stream) {
  const int32_t i = local(rank);
  if (aborted_) throw CommunicatorAborted("nccl communicator aborted");
  AURORA_NCCL_CHECK(ncclAllGather(send, recv, bytes, ncclUint8, comms_[static_cast<size_t>(i)], stream),
                    rank_name(rank, devices_[static_cast<size_t>(i)]), comms_[static_cast<size_t>(i)]);
}

void NcclCommunicator::all_to_all_v(int32_t rank, const AllToAllBuffers& b, const ExchangePlan& plan,
                                    cudaStream_t stream) {
  const int32_t i = local(rank);
  if (aborted_) throw CommunicatorAborted("nccl communicator aborted");
  ncclComm_t comm = comms_[static_cast<size_t>(i)];
  RankPhaseOps& ops = ops_[static_cast<size_t>(i)];
  build_rank_phase_ops(plan, rank, world_size_, b.send_offsets, b.recv_offsets, ops);
  if (ops.local_bytes > 0) {
    AURORA_CUDA_CHECK(cudaMemcpyAsync(b.recv + ops.local_recv_offset, b.send + ops.local_send_offset,
                                      static_cast<size_t>(ops.local_bytes), cudaMemcpyDeviceToDevice, stream));
  }
  const std::string where = rank_name(rank, devices_[static_cast<size_t>(i)]);
  for (size_t p = 0; p < ops.num_phases(); ++p) {
    const auto phase = ops.phase(p);
    if (phase.empty()) continue;  // nothing of this rank moves in this phase
    AURORA_NCCL_CHECK(ncclGroupStart(), where, comm);
    for (const P2pOp& op : phase) {
      ncclResult_t r;
      if (op.send) {
        r = ncclSend(b.send + op.offset, static_cast<size_t>(op.bytes), ncclUint8, op.peer, comm, stream);
      } else {
        r = ncclRecv(b.recv + op.offset, static_cast<size_t>(op.bytes), ncclUint8, op.peer, comm, stream);
      }
      if (r != ncclSuccess) {
        ncclGroupEnd();
        throw_nccl(op.send ? "ncclSend" : "ncclRecv", r, where + ", peer " + std::to_string(op.peer), comm);
      }
    }
    AURORA_NCCL_CHECK(ncclGroupEnd(), where, comm);
  }
}

void NcclCommunicator::all_gather(int32_t rank, const void* send, size_t bytes, void* recv, Stream& stream) {
  all_gather(rank, send, bytes, recv, cuda_stream_of(stream));
}

void NcclCommunicator::all_to_all_v(int32_t rank, const AllToAllBuffers& buffers, const ExchangePlan& plan,
                                    Stream& stream) {
  all_to_all_v(rank, buffers, plan, cuda_stream_of(stream));
}

void NcclCommunicator::barrier(int32_t rank) {
  const int32_t i = local(rank);
  if (aborted_) throw CommunicatorAborted("nccl communicator aborted");
  AURORA_CUDA_CHECK(cudaSetDevice(devices_[static_cast<size_t>(i)]));
  int32_t* word = barrier_words_[static_cast<size_t>(i)];
  cudaStream_t s = barrier_streams_[static_cast<size_t>(i)];
  AURORA_NCCL_CHECK(ncclAllReduce(word, word, 1, ncclInt32, ncclSum, comms_[static_cast<size_t>(i)], s),
                    rank_name(rank, devices_[static_cast<size_t>(i)]), comms_[static_cast<size_t>(i)]);
  AURORA_CUDA_CHECK(cudaStreamSynchronize(s));
}

void NcclCommunicator::abort() {
  if (aborted_) return;
  aborted_ = true;
  for (size_t i = 0; i < comms_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    if (comms_[i]) ncclCommAbort(comms_[i]);
    comms_[i] = nullptr;
  }
}

}  // namespace aurora::runtime::cuda
