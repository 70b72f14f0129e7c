// The multi-GPU machinery that does not need a GPU: each rank's phase operations (what the NCCL
// communicator issues) pair up across ranks and move every byte where the offsets say; the TCP
// rendezvous; the colocated compute turns on the CPU backend's streams and events; the joint
// (colocated) and heterogeneous expert placement; two models colocated on CPU ranks.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>

#include "aurora/config/model_config.hpp"
#include "aurora/runtime/backend.hpp"
#include "aurora/runtime/communicator.hpp"
#include "comm/phase_ops.hpp"
#include "comm/tcp_rendezvous.hpp"
#include "engine_test_support.hpp"
#include "executor/compute_turns.hpp"
#include "executor/placement_planner.hpp"
#include "unused_port.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;

namespace {

// rows[s][d] rows of 8 bytes, each (src, dst, index): a misplaced byte shows.
struct Exchange {
  int32_t n = 0;
  std::vector<std::vector<uint8_t>> send, recv, expect;
  std::vector<std::vector<int64_t>> send_off, recv_off;
  TrafficMatrix traffic;
};

Exchange make_exchange(int32_t n, std::mt19937& rng, bool skewed) {
  Exchange x;
  x.n = n;
  x.traffic.num_ranks = n;
  std::vector<std::vector<int32_t>> rows(static_cast<size_t>(n), std::vector<int32_t>(static_cast<size_t>(n)));
  for (auto& r : rows) {
    for (size_t d = 0; d < r.size(); ++d) {
      r[d] = static_cast<int32_t>(rng() % 20) + (skewed && d == 0 ? 60 : 0);
      if (rng() % 5 == 0) r[d] = 0;
    }
  }
  x.send.resize(static_cast<size_t>(n));
  x.recv.resize(static_cast<size_t>(n));
  x.expect.resize(static_cast<size_t>(n));
  x.send_off.assign(static_cast<size_t>(n), std::vector<int64_t>(static_cast<size_t>(n) + 1, 0));
  x.recv_off = x.send_off;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) {
      x.traffic.bytes.push_back(int64_t{rows[size_t(s)][size_t(d)]} * 8);
      for (int32_t i = 0; i < rows[size_t(s)][size_t(d)]; ++i) {
        x.send[size_t(s)].insert(x.send[size_t(s)].end(),
                                 {uint8_t(s), uint8_t(d), uint8_t(i), uint8_t(i >> 8), 0xA5, 0x5A, 1, 2});
      }
      x.send_off[size_t(s)][size_t(d) + 1] = int64_t(x.send[size_t(s)].size());
    }
  }
  for (int32_t d = 0; d < n; ++d) {
    for (int32_t s = 0; s < n; ++s) {
      const int64_t a = x.send_off[size_t(s)][size_t(d)], b = x.send_off[size_t(s)][size_t(d) + 1];
      x.expect[size_t(d)].insert(x.expect[size_t(d)].end(), x.send[size_t(s)].begin() + a,
                                 x.send[size_t(s)].begin() + b);
      x.recv_off[size_t(d)][size_t(s) + 1] = int64_t(x.expect[size_t(d)].size());
    }
    x.recv[size_t(d)].assign(x.expect[size_t(d)].size(), 0xEE);
  }
  return x;
}

// Replays every rank's operations phase by phase as NCCL would: within a phase, the k-th send of r
// to d meets the k-th receive of d from r; both must exist and agree on the size.
std::string replay(Exchange& x, const ExchangePlan& plan) {
  const int32_t n = x.n;
  std::vector<RankPhaseOps> ops(static_cast<size_t>(n));
  for (int32_t r = 0; r < n; ++r)
    build_rank_phase_ops(plan, r, n, x.send_off[size_t(r)].data(), x.recv_off[size_t(r)].data(), ops[size_t(r)]);
  for (int32_t r = 0; r < n; ++r) {
    const auto& o = ops[size_t(r)];
    std::copy_n(x.send[size_t(r)].begin() + o.local_send_offset, o.local_bytes,
                x.recv[size_t(r)].begin() + o.local_recv_offset);
  }
  for (size_t p = 0; p < plan.phases.size(); ++p) {
    std::map<std::pair<int32_t, int32_t>, std::vector<P2pOp>> sends, recvs;  // (src, dst) -> ops in order
    for (int32_t r = 0; r < n; ++r) {
      if (ops[size_t(r)].num_phases() != plan.phases.size()) return "phase count differs";
      for (const P2pOp& op : ops[size_t(r)].phase(p)) {
        (op.send ? sends[{r, op.peer}] : recvs[{op.peer, r}]).push_back(op);
      }
    }
    if (sends.size() != recvs.size()) return "phase " + std::to_string(p) + ": unmatched operations";
    for (const auto& [pair, s_ops] : sends) {
      auto it = recvs.find(pair);
      if (it == recvs.end() || it->second.size() != s_ops.size())
        return "phase " + std::to_string(p) + ": a send without its receive";
      for (size_t k = 0; k < s_ops.size(); ++k) {
        if (s_ops[k].bytes != it->second[k].bytes) return "sizes differ";
        std::copy_n(x.send[size_t(pair.first)].begin() + s_ops[k].offset, s_ops[k].bytes,
                    x.recv[size_t(pair.second)].begin() + it->second[k].offset);
      }
    }
  }
  for (int32_t r = 0; r < n; ++r) {
    if (x.recv[size_t(r)] != x.expect[size_t(r)]) return "rank " + std::to_string(r) + " received the wrong bytes";
  }
  return "";
}

config::ModelConfig fixture_config(const std::string& name) {
  auto c = config::load_model_config("tests/fixtures/models/" + name + "/config.json");
  REQUIRE(c.ok());
  return *c;
}

}  // namespace

TEST_CASE("phase operations: every send meets its receive in the same phase; bytes land by the offsets",
          "[multi_gpu][comm]") {
  std::mt19937 rng(11);
  for (int32_t n : {2, 3, 4, 8}) {
    for (bool skewed : {false, true}) {
      for (int planner_kind = 0; planner_kind < 3; ++planner_kind) {
        Exchange x = make_exchange(n, rng, skewed);
        // Aurora's planner at zero latency (matching phases), at 20 us (may choose all at once), and
        // the all-at-once baseline.
        auto planner = planner_kind == 0   ? make_aurora_planner(n, 400.0, 0.0)
                       : planner_kind == 1 ? make_aurora_planner(n, 400.0, 20e-6)
                                           : make_all_at_once_planner();
        const ExchangePlan& plan = planner->plan(x.traffic);
        INFO("n " << n << " skewed " << skewed << " planner " << planner_kind << " strategy " << plan.strategy);
        REQUIRE(check_plan(plan, x.traffic).empty());
        CHECK(replay(x, plan).empty());
        if (planner_kind == 2) CHECK(plan.phases.size() <= 1);
      }
    }
  }
}

TEST_CASE("phase operations reject a plan that does not cover the buffers", "[multi_gpu][comm]") {
  std::mt19937 rng(3);
  Exchange x = make_exchange(3, rng, false);
  auto planner = make_all_at_once_planner();
  ExchangePlan plan = planner->plan(x.traffic);
  REQUIRE(!plan.phases.empty());
  REQUIRE(!plan.phases[0].empty());
  plan.phases[0].pop_back();
  RankPhaseOps ops;
  bool threw = false;
  for (int32_t r = 0; r < 3; ++r) {
    try {
      build_rank_phase_ops(plan, r, 3, x.send_off[size_t(r)].data(), x.recv_off[size_t(r)].data(), ops);
    } catch (const std::exception&) {
      threw = true;
    }
  }
  CHECK(threw);
}

TEST_CASE("tcp rendezvous: every process gets rank 0's blob and everyone's local counts", "[multi_gpu][rendezvous]") {
  const int32_t port = unused_tcp_port();
  const int32_t world = 3;
  std::vector<Result<RendezvousResult>> results(static_cast<size_t>(world),
                                                Error::make(ErrorCode::kInternal, "not run"));
  std::vector<std::byte> blob(128);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<std::byte>(i * 7 + 1);
  std::vector<std::thread> threads;
  for (int32_t r = world - 1; r >= 0; --r) {  // joiners first: they retry until rank 0 listens
    threads.emplace_back([&, r] {
      RendezvousOptions o;
      o.rank = r;
      o.world_size = world;
      o.master_port = port;
      o.timeout_ms = 10000;
      results[size_t(r)] = rendezvous(o, r == 0 ? blob : std::vector<std::byte>{}, r + 1);
    });
  }
  for (auto& t : threads) t.join();
  for (int32_t r = 0; r < world; ++r) {
    INFO("rank " << r);
    REQUIRE(results[size_t(r)].ok());
    CHECK(results[size_t(r)]->blob == blob);
    CHECK(results[size_t(r)]->local_counts == std::vector<int32_t>{1, 2, 3});
  }
}

TEST_CASE("tcp rendezvous: a missing rank is a deadline error, bad variables name themselves",
          "[multi_gpu][rendezvous]") {
  RendezvousOptions o;
  o.rank = 0;
  o.world_size = 2;
  o.master_port = unused_tcp_port();
  o.timeout_ms = 200;
  auto r = rendezvous(o, std::vector<std::byte>(8), 1);
  REQUIRE(!r.ok());
  INFO(r.error().message);
  CHECK(r.error().code == ErrorCode::kDeadlineExceeded);
  ::setenv("AURORA_WORLD_SIZE", "2", 1);
  ::setenv("AURORA_RANK", "abc", 1);
  auto bad = rendezvous_options_from_env();
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.find("AURORA_RANK") != std::string::npos);
  ::setenv("AURORA_RANK", "1", 1);
  ::setenv("AURORA_MASTER_PORT", "70000", 1);
  auto bad_port = rendezvous_options_from_env();
  REQUIRE(!bad_port.ok());
  CHECK(bad_port.error().message.find("AURORA_MASTER_PORT") != std::string::npos);
  ::unsetenv("AURORA_MASTER_PORT");
  auto good = rendezvous_options_from_env();
  REQUIRE(good.ok());
  CHECK(good->rank == 1);
  CHECK(good->world_size == 2);
  ::unsetenv("AURORA_RANK");
  ::unsetenv("AURORA_WORLD_SIZE");
}

TEST_CASE("compute turns: two models' segments alternate; each waits on the other's last event", "[multi_gpu][turns]") {
  auto backend = make_cpu_backend();
  ComputeTurns turns(2);
  for (auto [segments_a, segments_b] : {std::pair{5, 5}, std::pair{2, 6}, std::pair{6, 1}}) {
    turns.begin_step({true, true});
    std::mutex mu;
    std::vector<int32_t> trace;
    std::vector<const void*> waited_on;
    std::unique_ptr<Event> events[2] = {backend->create_event(), backend->create_event()};
    auto model = [&](int32_t m, int32_t segments) {
      auto stream = backend->create_stream();
      for (int32_t k = 0; k < segments; ++k) {
        const void* previous = turns.acquire(m);
        if (previous) backend->wait(*stream, *static_cast<const Event*>(previous));  // the device half
        {
          std::lock_guard lock(mu);
          trace.push_back(m);
          waited_on.push_back(previous);
        }
        backend->record(*events[m], *stream);
        if (k + 1 < segments) {
          turns.release(m, events[m].get());
          std::this_thread::sleep_for(std::chrono::microseconds(50 * (m + 1)));  // host work between segments
        } else {
          turns.leave(m, events[m].get());
        }
      }
    };
    std::thread b([&] { model(1, segments_b); });
    std::thread a([&] { model(0, segments_a); });
    a.join();
    b.join();
    INFO("segments " << segments_a << " / " << segments_b);
    REQUIRE(trace.size() == size_t(segments_a + segments_b));
    // Strict alternation while both have segments left, then the remaining model alone.
    const int32_t both = 2 * std::min(segments_a, segments_b);
    for (int32_t i = 0; i < both; ++i) CHECK(trace[size_t(i)] == i % 2);
    for (size_t i = size_t(both); i < trace.size(); ++i) CHECK(trace[i] == (segments_a > segments_b ? 0 : 1));
    CHECK(waited_on[0] == nullptr);
    for (int32_t i = 1; i < both; ++i) CHECK(waited_on[size_t(i)] == events[(i + 1) % 2].get());
    CHECK(turns.turns_taken() == segments_a + segments_b);
  }
  // A model alone never waits; abort wakes a waiter.
  turns.begin_step({false, true});
  CHECK(turns.acquire(1) == nullptr);
  turns.release(1, nullptr);
  CHECK(turns.acquire(1) == nullptr);
  turns.begin_step({true, true});
  std::atomic<bool> aborted{false};
  std::thread waiter([&] {
    try {
      turns.acquire(1);
    } catch (const CommunicatorAborted&) {
      aborted = true;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  turns.abort();
  waiter.join();
  CHECK(aborted);
}

TEST_CASE("colocated placement: both models' experts on every rank, combined work balanced", "[multi_gpu][placement]") {
  const config::ModelConfig a = fixture_config("olmoe"), b = fixture_config("qwen3_moe");
  for (int32_t n : {2, 4}) {
    auto placed = plan_model_placements({&a, &b}, {}, std::vector<RankSpec>(size_t(n)), true);
    REQUIRE(placed.ok());
    REQUIRE(placed->size() == 2);
    for (int32_t l = 0; l < a.num_layers; ++l) {
      if (!a.layer_is_moe[size_t(l)]) continue;
      double work_max = 0, work_sum = 0;
      for (int32_t r = 0; r < n; ++r) {
        const auto& ea = (*placed)[0].layers[size_t(l)].rank_experts[size_t(r)];
        const auto& eb = (*placed)[1].layers[size_t(l)].rank_experts[size_t(r)];
        // Expert work in the planner's unit: tokens x hidden x intermediate.
        const double work =
            double(ea.size()) * a.hidden_size * a.moe_intermediate_size / a.num_experts * a.num_experts_per_tok +
            double(eb.size()) * b.hidden_size * b.moe_intermediate_size / b.num_experts * b.num_experts_per_tok;
        work_max = std::max(work_max, work);
        work_sum += work;
        CHECK(ea.size() + eb.size() > 0);
      }
      CHECK(work_max <= 1.5 * work_sum / n);
    }
  }
  auto wrong = plan_model_placements({&a}, {}, std::vector<RankSpec>(2), true);
  CHECK(!wrong.ok());
}

TEST_CASE("heterogeneous placement: a rank at half speed gets about half the experts", "[multi_gpu][placement]") {
  const config::ModelConfig a = fixture_config("olmoe");
  std::vector<RankSpec> ranks{{1.0, 400.0}, {0.5, 400.0}};
  auto placed = plan_model_placements({&a}, {}, ranks, false);
  REQUIRE(placed.ok());
  for (int32_t l = 0; l < a.num_layers; ++l) {
    const auto& lp = (*placed)[0].layers[size_t(l)];
    INFO("layer " << l);
    CHECK(lp.rank_experts[0].size() > lp.rank_experts[1].size());
    CHECK(lp.rank_experts[0].size() + lp.rank_experts[1].size() == size_t(a.num_experts));
  }
  std::vector<RankSpec> bad{{1.0, 400.0}, {0.0, 400.0}};
  auto refused = plan_model_placements({&a}, {}, bad, false);
  REQUIRE(!refused.ok());
  CHECK(refused.error().message.find("ranks[1]") != std::string::npos);
}

TEST_CASE("two models colocated on CPU ranks: each model's tokens are those it makes alone", "[multi_gpu][engine]") {
  auto generate = [](std::vector<std::string> dirs, int32_t ranks, const std::string& model,
                     std::vector<int32_t> prompt) {
    EngineOptions o;
    o.model_dirs = std::move(dirs);
    o.device = "cpu";
    o.num_ranks = ranks;
    o.kv_cache_tokens = 4096;
    auto e = create_engine(o);
    REQUIRE(e.ok());
    auto r = make_request(std::move(prompt), 16);
    r.model = model;
    r.sampling.ignore_eos = true;
    auto sink = std::make_shared<CollectingSink>();
    REQUIRE((*e)->submit(r, sink).ok());
    REQUIRE(sink->wait());
    return sink->token_ids();
  };
  const std::string olmoe = "tests/fixtures/models/olmoe", qwen3 = "tests/fixtures/models/qwen3_moe";
  const std::vector<int32_t> p1{5, 17, 42, 99, 3, 250}, p2{7, 8, 9, 10, 200, 33, 61};
  const auto alone_a = generate({olmoe}, 1, "olmoe", p1);
  const auto alone_b = generate({qwen3}, 1, "qwen3_moe", p2);
  CHECK(generate({olmoe, qwen3}, 2, "olmoe", p1) == alone_a);
  CHECK(generate({olmoe, qwen3}, 2, "qwen3_moe", p2) == alone_b);
  CHECK(generate({olmoe, qwen3}, 4, "olmoe", p1) == alone_a);
}
