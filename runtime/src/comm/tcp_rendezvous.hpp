// TCP rendezvous: how the processes of a multi-host (or multi-process) NCCL job agree on the
// ncclUniqueId before ncclCommInitRank. Process 0 listens on AURORA_MASTER_ADDR:AURORA_MASTER_PORT,
// every other process connects (retrying until the deadline) and sends its rank; process 0 answers
// each with the blob (the unique id) and checks that every rank in [1, world_size) came exactly
// once. The launcher is therefore anything that starts one process per host with four variables:
//   AURORA_RANK=r AURORA_WORLD_SIZE=n AURORA_MASTER_ADDR=host0 AURORA_MASTER_PORT=29517
// (torchrun-style; docs/multi_gpu.md shows the commands). Blocking; one call per process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct RendezvousOptions {
  int32_t rank = 0;
  int32_t world_size = 1;
  std::string master_addr = "127.0.0.1";  // IPv4 address or host name of process 0
  int32_t master_port = 29517;
  int32_t timeout_ms = 60000;
};

// From AURORA_RANK, AURORA_WORLD_SIZE (both required), AURORA_MASTER_ADDR, AURORA_MASTER_PORT,
// AURORA_RENDEZVOUS_TIMEOUT_MS. Errors name the variable and its value.
Result<RendezvousOptions> rendezvous_options_from_env();

// Rank 0 passes the blob and gets it back; the others pass nothing and receive rank 0's. Every
// process also learns the others' `local_count` (e.g. GPUs it drives): counts[r] for rank r.
struct RendezvousResult {
  std::vector<std::byte> blob;
  std::vector<int32_t> local_counts;
};
Result<RendezvousResult> rendezvous(const RendezvousOptions& options, const std::vector<std::byte>& blob,
                                    int32_t local_count);

}  // namespace aurora::runtime
