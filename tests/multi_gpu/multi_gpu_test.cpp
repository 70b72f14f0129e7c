// Multi-GPU behaviour on real devices (2+ GPUs):
// - the regroup kernel against its CPU twin;
// - the NCCL communicator: planned phases and all-at-once deliver every row where the offsets say
//   (rows carry their source, destination and index), all_gather;
// - two processes meet through the TCP rendezvous and exchange through NCCL;
// - greedy tokens of the engine on 1 GPU and with expert parallelism over 2 GPUs are identical;
// - each model alone and both colocated (2 GPUs, and 1 GPU) give identical greedy tokens;
// - colocated compute segments never overlap on a GPU (the staggered timeline's turns).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "aurora/kernels/cuda/moe_exchange.hpp"
#include "aurora/runtime/engine.hpp"
#include "engine_test_support.hpp"
#include "executor/rank_pool.hpp"
#include "expert_parallel_group.hpp"
#include "gpu_test_support.hpp"
#include "nccl_communicator.hpp"
#include "unused_port.hpp"

extern char** environ;

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::cuda;
using aurora::test::DeviceArray;
namespace fs = std::filesystem;

namespace {

int num_gpus() {
  int n = 0;
  AURORA_CUDA_CHECK(cudaGetDeviceCount(&n));
  return n;
}

// Rows of 16 bytes: (src, dst, index, magic).
std::vector<int32_t> payload_rows(int32_t src, int32_t dst, int64_t count) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < count; ++i) v.insert(v.end(), {src, dst, static_cast<int32_t>(i), 0x5EED});
  return v;
}

// rows(s, d) rows from s to d; each rank exchanges through `comm` with `planner` on its GPU and
// checks what arrived. Returns "" or the first problem.
std::string exchange_and_check(NcclCommunicator& comm, int32_t rank, ExchangePlanner& planner,
                               const std::function<int64_t(int32_t, int32_t)>& rows) {
  const int32_t n = comm.num_ranks();
  AURORA_CUDA_CHECK(cudaSetDevice(comm.device_of(rank)));
  std::vector<int32_t> send;
  std::vector<int64_t> so(size_t(n) + 1, 0), ro(size_t(n) + 1, 0);
  for (int32_t d = 0; d < n; ++d) {
    auto part = payload_rows(rank, d, rows(rank, d));
    send.insert(send.end(), part.begin(), part.end());
    so[size_t(d) + 1] = int64_t(send.size()) * 4;
  }
  for (int32_t s = 0; s < n; ++s) ro[size_t(s) + 1] = ro[size_t(s)] + rows(s, rank) * 16;
  TrafficMatrix traffic;
  traffic.num_ranks = n;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) traffic.bytes.push_back(rows(s, d) * 16);
  }
  const ExchangePlan& plan = planner.plan(traffic);
  // Every allocation before the collectives: an allocation may wait for the device.
  DeviceArray<int32_t> dsend(send);
  DeviceArray<int32_t> drecv(size_t(ro[size_t(n)] / 4));
  DeviceArray<int32_t> mine(std::vector<int32_t>{rank * 10 + 1, rank});
  DeviceArray<int32_t> all(size_t(2 * n));
  cudaStream_t stream = nullptr;
  AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  comm.all_to_all_v(rank,
                    AllToAllBuffers{reinterpret_cast<const std::byte*>(dsend.get()), so.data(),
                                    reinterpret_cast<std::byte*>(drecv.get()), ro.data()},
                    plan, stream);
  comm.all_gather(rank, mine.get(), 8, all.get(), stream);
  AURORA_CUDA_CHECK(cudaStreamSynchronize(stream));
  AURORA_CUDA_CHECK(cudaStreamDestroy(stream));
  const auto got = drecv.download();
  for (int32_t s = 0; s < n; ++s) {
    const auto want = payload_rows(s, rank, rows(s, rank));
    if (!std::equal(want.begin(), want.end(), got.begin() + ro[size_t(s)] / 4)) {
      return "rank " + std::to_string(rank) + ": rows from rank " + std::to_string(s) + " misplaced (" + plan.strategy +
             ")";
    }
  }
  const auto gathered = all.download();
  for (int32_t s = 0; s < n; ++s) {
    if (gathered[size_t(2 * s)] != s * 10 + 1 || gathered[size_t(2 * s + 1)] != s) return "all_gather";
  }
  return "";
}

std::string write_config(const std::string& name, int32_t experts, int32_t top_k, int32_t inter, int32_t layers) {
  const fs::path dir = fs::temp_directory_path() / ("aurora_mg_" + std::to_string(::getpid())) / name;
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
    "hidden_size": 512, "intermediate_size": )"
                                     << inter << R"(, "num_attention_heads": 8, "num_key_value_heads": 8,
    "num_hidden_layers": )" << layers << R"(, "num_experts": )"
                                     << experts << R"(, "num_experts_per_tok": )" << top_k << R"(,
    "vocab_size": 1024, "max_position_embeddings": 1024, "rms_norm_eps": 1e-05, "norm_topk_prob": false,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "clip_qkv": null,
    "tie_word_embeddings": false, "eos_token_id": 1, "bos_token_id": null, "hidden_act": "silu"})";
  return dir.string();
}

struct Request {
  std::string model;
  std::vector<int32_t> prompt;
};

// Submits every request at once (so that they share steps) and returns each one's greedy tokens;
// with `logprobs`, also each one's logprobs (every generated token's and its position's top 4, in
// order), which carry the logits' bits.
std::vector<std::vector<int32_t>> generate(std::vector<std::string> dirs, int32_t ranks,
                                           const std::vector<Request>& reqs, int32_t max_tokens = 20,
                                           std::vector<std::vector<float>>* logprobs = nullptr) {
  EngineOptions o;
  o.model_dirs = std::move(dirs);
  o.device = "cuda:0";
  o.num_ranks = ranks;
  o.random_weights = true;
  o.seed = 5;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 256;
  o.kv_cache_tokens = 4096;
  auto e = create_engine(o);
  REQUIRE(e.ok());
  std::vector<std::shared_ptr<runtime::test::CollectingSink>> sinks;
  for (const auto& r : reqs) {
    auto g = runtime::test::make_request(r.prompt, max_tokens);
    g.model = r.model;
    g.sampling.ignore_eos = true;
    if (logprobs) g.sampling.logprobs = 4;
    sinks.push_back(std::make_shared<runtime::test::CollectingSink>());
    REQUIRE((*e)->submit(g, sinks.back()).ok());
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& s : sinks) {
    REQUIRE(s->wait(std::chrono::seconds(120)));
    out.push_back(s->token_ids());
    if (logprobs) {
      std::vector<float> v;
      for (const auto& g : s->logprobs) {
        v.push_back(g.sampled.logprob);
        for (const auto& t : g.top) v.push_back(t.logprob);
      }
      logprobs->push_back(std::move(v));
    }
  }
  (*e)->shutdown(std::chrono::milliseconds(0));
  return out;
}

std::vector<int32_t> prompt_of(uint32_t seed, int32_t length) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(static_cast<size_t>(length));
  for (auto& t : p) t = 2 + static_cast<int32_t>(rng() % 1000);
  return p;
}

}  // namespace

// One process of the two-process test: rank AURORA_RANK on GPU AURORA_MG_DEVICE.
int run_rendezvous_child() {
  try {
    const int device = std::atoi(std::getenv("AURORA_MG_DEVICE"));
    auto comm = NcclCommunicator::create_from_env({device});
    if (!comm) {
      std::fprintf(stderr, "child: %s\n", comm.error().message.c_str());
      return 2;
    }
    auto planner = make_aurora_planner((*comm)->num_ranks(), 400.0, 0.0);
    const std::string problem = exchange_and_check(**comm, (*comm)->first_local_rank(), *planner,
                                                   [](int32_t s, int32_t d) { return int64_t{(s + 1) * (d + 3) * 5}; });
    if (!problem.empty()) {
      std::fprintf(stderr, "child: %s\n", problem.c_str());
      return 3;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    return 4;
  }
}

TEST_CASE("regroup_by_key on the GPU equals the CPU twin", "[multi_gpu][kernels]") {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 10; ++trial) {
    const int32_t E = 8 << (trial % 4), items = 1 + static_cast<int32_t>(rng() % 2000);
    std::vector<int32_t> expert(static_cast<size_t>(items));
    for (auto& e : expert) e = static_cast<int32_t>(rng() % uint32_t(E));
    std::vector<int32_t> key_of(static_cast<size_t>(E)), expert_of(static_cast<size_t>(E));
    std::iota(key_of.begin(), key_of.end(), 0);
    std::shuffle(key_of.begin(), key_of.end(), rng);
    for (int32_t e = 0; e < E; ++e) expert_of[size_t(key_of[size_t(e)])] = e;
    std::vector<int32_t> eoff(static_cast<size_t>(E) + 1), eperm(static_cast<size_t>(items)),
        epos(static_cast<size_t>(items));
    kernels::cpu::permute(kernels::PermuteParams{expert.data(), items, E, eoff.data(), eperm.data(), epos.data()});
    std::vector<int32_t> koff(static_cast<size_t>(E) + 1), kperm(static_cast<size_t>(items)),
        kpos(static_cast<size_t>(items));
    kernels::cpu::regroup_by_key(kernels::RegroupByKeyParams{eoff.data(), eperm.data(), key_of.data(), expert_of.data(),
                                                             E, items, koff.data(), kperm.data(), kpos.data()});
    AURORA_CUDA_CHECK(cudaSetDevice(0));
    DeviceArray<int32_t> d_eoff(eoff), d_eperm(eperm), d_key(key_of), d_exp(expert_of);
    DeviceArray<int32_t> d_koff(static_cast<size_t>(E) + 1), d_kperm(static_cast<size_t>(items)),
        d_kpos(static_cast<size_t>(items));  // poisoned (-1)
    kernels::cuda::launch_regroup_by_key(
        kernels::RegroupByKeyParams{d_eoff.get(), d_eperm.get(), d_key.get(), d_exp.get(), E, items, d_koff.get(),
                                    d_kperm.get(), d_kpos.get()},
        nullptr);
    CHECK(d_koff.download() == koff);
    CHECK(d_kperm.download() == kperm);
    CHECK(d_kpos.download() == kpos);
  }
}

TEST_CASE("NCCL all_to_all_v: planned phases and all-at-once put every row in place", "[multi_gpu][nccl]") {
  const int32_t n = num_gpus();
  std::vector<int> devices(static_cast<size_t>(n));
  std::iota(devices.begin(), devices.end(), 0);
  auto comm = NcclCommunicator::create_local(devices);
  REQUIRE(comm.ok());
  RankPool pool(n);
  for (int kind = 0; kind < 3; ++kind) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      // Uniform, one hot receiver, and some empty pairs.
      auto rows = [pattern](int32_t s, int32_t d) -> int64_t {
        if (pattern == 0) return 100 + 7 * s + 3 * d;
        if (pattern == 1) return d == 0 ? 5000 + s : 40;
        return (s + d) % 3 == 0 ? 0 : 1000 * (s + 1);
      };
      std::vector<std::string> problems(static_cast<size_t>(n));
      std::function<void(int32_t)> fn = [&](int32_t r) {
        auto planner = kind == 0   ? make_aurora_planner(n, 400.0, 0.0)
                       : kind == 1 ? make_aurora_planner(n, 2400.0, 20e-6)
                                   : make_all_at_once_planner();
        problems[size_t(r)] = exchange_and_check(**comm, r, *planner, rows);
      };
      std::function<void()> on_failure = [&] { (*comm)->abort(); };
      pool.run(fn, on_failure);
      for (int32_t r = 0; r < n; ++r) {
        INFO("planner " << kind << " pattern " << pattern << " rank " << r);
        CHECK(problems[size_t(r)].empty());
      }
    }
  }
}

TEST_CASE("two processes meet through the TCP rendezvous and exchange through NCCL", "[multi_gpu][rendezvous]") {
  const std::string port = std::to_string(runtime::test::unused_tcp_port());
  std::vector<pid_t> children;
  for (int32_t r = 0; r < 2; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    for (std::string v :
         {std::string("AURORA_MG_CHILD=1"), "AURORA_RANK=" + std::to_string(r), std::string("AURORA_WORLD_SIZE=2"),
          std::string("AURORA_MASTER_ADDR=127.0.0.1"), "AURORA_MASTER_PORT=" + port,
          "AURORA_MG_DEVICE=" + std::to_string(r), std::string("NCCL_NVLS_ENABLE=0")}) {
      env.push_back(v);
    }
    std::vector<char*> envp;
    for (auto& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    char arg0[] = "multi_gpu_test";
    char* argv[] = {arg0, nullptr};
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) == 0);
    children.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (pid_t pid : children) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL("rendezvous child timed out");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

TEST_CASE("greedy tokens: 1 GPU and expert parallelism over 2 GPUs agree", "[multi_gpu][engine]") {
  const std::string dir = write_config("ep16", 16, 4, 256, 4);
  // Short prompts together (a 48-token prefill whose experts take the tiled grouped GEMM, then
  // 4-token decode steps on the GEMVs with the norms fused into them), then one long prompt alone
  // (cuBLASLt for projections and the tiled grouped GEMM for experts on both sides).
  std::vector<Request> together;
  // The logprobs too, bit for bit: a greedy token flips only where two logits nearly tie, so equal
  // tokens alone would let most differences in the logits' bits through.
  for (uint32_t i = 0; i < 4; ++i) together.push_back(Request{"", prompt_of(i, 12)});
  std::vector<std::vector<float>> lp_one, lp_two;
  const auto one = generate({dir}, 1, together, 20, &lp_one);
  const auto two = generate({dir}, 2, together, 20, &lp_two);
  for (size_t i = 0; i < together.size(); ++i) {
    INFO("request " << i);
    CHECK(one[i].size() == 20);
    CHECK(two[i] == one[i]);
    REQUIRE(lp_one[i].size() == 20 * 5);
    REQUIRE(lp_two[i].size() == lp_one[i].size());
    CHECK(std::memcmp(lp_two[i].data(), lp_one[i].data(), lp_one[i].size() * sizeof(float)) == 0);
  }
  const std::vector<Request> long_prompt{Request{"", prompt_of(99, 100)}};
  CHECK(generate({dir}, 2, long_prompt) == generate({dir}, 1, long_prompt));
}

TEST_CASE("colocated models: each model's greedy tokens equal those it makes alone",
          "[multi_gpu][engine][colocation]") {
  // The tokens and the logprobs' bits (as in the 1-vs-2-GPU case above).
  const std::string a = write_config("coloc_a", 16, 4, 256, 4), b = write_config("coloc_b", 8, 2, 384, 4);
  const std::vector<Request> reqs_a{Request{"coloc_a", prompt_of(1, 10)}, Request{"coloc_a", prompt_of(2, 14)}};
  const std::vector<Request> reqs_b{Request{"coloc_b", prompt_of(3, 9)}, Request{"coloc_b", prompt_of(4, 16)}};
  std::vector<std::vector<float>> lp_alone;
  auto alone = generate({a}, 1, reqs_a, 20, &lp_alone);
  const auto alone_b = generate({b}, 1, reqs_b, 20, &lp_alone);
  alone.insert(alone.end(), alone_b.begin(), alone_b.end());
  std::vector<Request> both = reqs_a;
  both.insert(both.end(), reqs_b.begin(), reqs_b.end());
  for (int32_t ranks : {2, 1}) {
    std::vector<std::vector<float>> lp;
    const auto together = generate({a, b}, ranks, both, 20, &lp);
    REQUIRE(together.size() == alone.size());
    REQUIRE(lp.size() == lp_alone.size());
    for (size_t i = 0; i < alone.size(); ++i) {
      INFO(ranks << " GPU(s), request " << i);
      CHECK(together[i] == alone[i]);
      REQUIRE(lp[i].size() == lp_alone[i].size());
      CHECK(std::memcmp(lp[i].data(), lp_alone[i].data(), lp[i].size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("colocated compute segments take turns on every GPU; exchanges overlap the other model",
          "[multi_gpu][colocation]") {
  auto load = [](const std::string& dir) {
    auto c = config::load_model_config(dir + "/config.json");
    REQUIRE(c.ok());
    return *c;
  };
  const int32_t n = 2;
  EpGroupOptions o;
  o.devices = {0, 1};
  o.runner.max_tokens_per_step = 128;
  o.runner.max_seqs_per_step = 16;
  o.runner.max_context = 256;
  o.runner.kv_cache_tokens = 2048;
  o.timeline = true;
  auto group = ExpertParallelGroup::create({EpGroupModel{"a", load(write_config("tl_a", 16, 4, 256, 4)), nullptr, 1},
                                            EpGroupModel{"b", load(write_config("tl_b", 16, 4, 256, 4)), nullptr, 2}},
                                           o);
  REQUIRE(group.ok());
  // Four sequences per model, two per GPU, 8 prompt tokens each, then two decode steps.
  struct Seq {
    std::vector<int32_t> tokens, blocks;
  };
  std::vector<std::vector<Seq>> seqs(2, std::vector<Seq>(4));
  for (int m = 0; m < 2; ++m) {
    for (int i = 0; i < 4; ++i) {
      seqs[size_t(m)][size_t(i)].tokens = prompt_of(uint32_t(10 * m + i), 8);
      seqs[size_t(m)][size_t(i)].blocks = {i / n * 4, i / n * 4 + 1, i / n * 4 + 2, i / n * 4 + 3};
    }
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<StepBatch> batches(2);
    std::vector<std::vector<kernels::SamplingRow>> rows(2, std::vector<kernels::SamplingRow>(4));
    std::vector<std::vector<int32_t>> tokens(2, std::vector<int32_t>(4, -1));
    std::vector<GroupStep> steps(2);
    for (int m = 0; m < 2; ++m) {
      for (int i = 0; i < 4; ++i) {
        Seq& s = seqs[size_t(m)][size_t(i)];
        SequenceChunk c;
        c.rank = i % n;
        const int32_t start = step == 0 ? 0 : static_cast<int32_t>(s.tokens.size()) - 1;
        c.tokens = s.tokens.data() + start;
        c.num_tokens = static_cast<int32_t>(s.tokens.size()) - start;
        c.start_position = start;
        c.block_table = s.blocks.data();
        c.num_blocks = 4;
        c.logits = LogitsMode::kLast;
        c.logits_row = i;
        batches[size_t(m)].chunks.push_back(c);
      }
      batches[size_t(m)].num_logits_rows = 4;
      steps[size_t(m)] = GroupStep{&batches[size_t(m)], rows[size_t(m)].data(), tokens[size_t(m)].data()};
    }
    auto results = (*group)->execute(steps);
    for (int m = 0; m < 2; ++m) {
      REQUIRE(results[size_t(m)] != nullptr);
      for (int i = 0; i < 4; ++i) {
        REQUIRE(tokens[size_t(m)][size_t(i)] >= 0);
        seqs[size_t(m)][size_t(i)].tokens.push_back(tokens[size_t(m)][size_t(i)]);
      }
    }
    const auto spans = (*group)->last_timeline();
    int compute = 0, overlapped = 0;
    for (const auto& x : spans) {
      if (x.span.comm) continue;
      ++compute;
      for (const auto& y : spans) {
        if (y.gpu != x.gpu || y.model == x.model) continue;
        if (!y.span.comm) {
          // Compute segments of the two models on one GPU never overlap.
          INFO("gpu " << x.gpu << " " << x.span.label << " L" << x.span.layer << " [" << x.span.start_ms << ", "
                      << x.span.end_ms << "] vs " << y.span.label << " L" << y.span.layer << " [" << y.span.start_ms
                      << ", " << y.span.end_ms << "]");
          CHECK((x.span.end_ms <= y.span.start_ms || y.span.end_ms <= x.span.start_ms));
        } else if (std::min(x.span.end_ms, y.span.end_ms) > std::max(x.span.start_ms, y.span.start_ms)) {
          ++overlapped;
        }
      }
    }
    CHECK(compute > 0);
    std::printf("step %d: %d compute segments, %d overlaps of a compute segment with the other model's exchange\n",
                step, compute, overlapped);
  }
}
