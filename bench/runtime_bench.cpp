// CPU decode throughput of the engine, end to end (scheduler, executor, expert-parallel exchange,
// sampling, streaming): B requests start together, prefill in one step, then decode N tokens each;
// decode tokens/s = decoded tokens / time from the last first token to the last finish. "CPU share"
// is the process's CPU time over wall time: on a shared machine it shows how much CPU the run got.
//
//   aurora_runtime_bench [--quick] [--model embedded|olmoe-mini|all] [--ranks N]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "aurora/runtime/engine.hpp"
#include "engine/engine_builder.hpp"
#include "model/embedded_model.hpp"
#include "model/model_builder.hpp"

using namespace aurora;
using namespace aurora::runtime;

namespace {

class CountingSink final : public TokenSink {
 public:
  bool on_delta(const TokenDelta&) override { return true; }
  void on_finish(const Completion& c) override {
    std::lock_guard lock(mu_);
    completion = c;
    done = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv.wait(lock, [&] { return done; });
  }
  Completion completion;

 private:
  std::mutex mu_;
  std::condition_variable cv;
  bool done = false;
};

// OLMoE-1B-7B's shape (64 experts, top-8, MHA, vocab 50304) at a quarter of the width and half
// the depth, so that its random float32 weights (~1 GB) fit a small shared machine.
config::ModelConfig olmoe_mini() {
  config::ModelConfig c;
  c.architecture = config::ModelArchitecture::kOlmoe;
  c.model_type = "olmoe";
  c.vocab_size = 50304;
  c.hidden_size = 512;
  c.num_layers = 8;
  c.num_heads = 8;
  c.num_kv_heads = 8;
  c.head_dim = 64;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.num_experts = 64;
  c.num_experts_per_tok = 8;
  c.moe_intermediate_size = 256;
  c.qk_norm = config::QkNorm::kFull;
  c.topk_norm = config::TopKNorm::kNone;
  c.layer_is_moe.assign(8, true);
  c.layer_sliding_window.assign(8, 0);
  return c;
}

struct Result_ {
  double decode_tokens_per_s = 0;
  double ms_per_step = 0;
  double prefill_s = 0;
  double cpu_share = 0;  // process CPU seconds per wall second over the run (a shared machine shows < 1)
};

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

Result_ measure(std::shared_ptr<const Model> model, int32_t batch, int32_t ranks, int32_t prompt_len, int32_t decode) {
  EngineOptions o;
  o.num_ranks = ranks;
  o.max_num_seqs = std::max(batch, 16);
  o.max_num_batched_tokens = std::max(512, batch * prompt_len);
  // Room for the whole batch on every rank (sequences go to the rank with the most free blocks).
  o.kv_cache_tokens = int64_t{ranks} * batch * (prompt_len + decode + 16);
  auto engine = create_engine_with_models(o, {model});
  if (!engine) {
    std::fprintf(stderr, "engine: %s\n", engine.error().message.c_str());
    std::exit(1);
  }
  const int32_t vocab = model->config.vocab_size;
  std::vector<std::shared_ptr<CountingSink>> sinks;
  const auto t0 = Clock::now();
  const double cpu0 = process_cpu_seconds();
  for (int32_t b = 0; b < batch; ++b) {
    GenerationRequest r;
    for (int32_t i = 0; i < prompt_len; ++i) r.prompt_ids.push_back((b * 131 + i * 17 + 32) % std::min(vocab, 256));
    r.sampling.max_tokens = decode;
    r.sampling.temperature = 0.0f;
    r.sampling.ignore_eos = true;
    auto sink = std::make_shared<CountingSink>();
    auto id = (*engine)->submit(r, sink);
    if (!id) {
      std::fprintf(stderr, "submit: %s\n", id.error().message.c_str());
      std::exit(1);
    }
    sinks.push_back(sink);
  }
  Clock::time_point last_first = t0, last_finish = t0;
  for (auto& s : sinks) {
    s->wait();
    last_first = std::max(last_first, s->completion.timing.first_token);
    last_finish = std::max(last_finish, s->completion.timing.finished);
  }
  const double decode_s = std::chrono::duration<double>(last_finish - last_first).count();
  Result_ r;
  r.decode_tokens_per_s = double(batch) * (decode - 1) / decode_s;
  r.ms_per_step = decode_s * 1e3 / (decode - 1);
  r.prefill_s = std::chrono::duration<double>(last_first - t0).count();
  r.cpu_share = (process_cpu_seconds() - cpu0) / std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string which = "all";
  int32_t ranks = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--model") && i + 1 < argc)
      which = argv[++i];
    else if (!std::strcmp(argv[i], "--ranks") && i + 1 < argc)
      ranks = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: aurora_runtime_bench [--quick] [--model embedded|olmoe-mini|all] [--ranks N]\n");
      return 2;
    }
  }
  struct Case {
    std::string name;
    std::shared_ptr<const Model> model;
    int32_t decode;
  };
  std::vector<Case> cases;
  if (which == "all" || which == "embedded") {
    auto tok = make_embedded_tokenizer();
    cases.push_back({"embedded (h288, 4L, 16E top-2)",
                     make_embedded_model(tok->vocab_size(), tok->bos_id(), tok->eos_ids()), quick ? 16 : 128});
  }
  if (which == "all" || which == "olmoe-mini") {
    const auto t0 = Clock::now();
    auto m = make_random_model(olmoe_mini(), 1, "olmoe-mini");
    if (!m) {
      std::fprintf(stderr, "%s\n", m.error().message.c_str());
      return 1;
    }
    std::fprintf(stderr, "olmoe-mini: random weights in %.1f s\n",
                 std::chrono::duration<double>(Clock::now() - t0).count());
    cases.push_back({"olmoe-mini (h512, 8L, 64E top-8)", *m, quick ? 8 : 32});
  }
  std::printf("| model | batch | ranks | decode tokens/s | ms/step | prefill s | CPU share |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& c : cases) {
    for (int32_t batch : {1, 16}) {
      auto r = measure(c.model, batch, ranks, 32, c.decode);
      std::printf("| %s | %d | %d | %.1f | %.2f | %.3f | %.2f |\n", c.name.c_str(), batch, ranks, r.decode_tokens_per_s,
                  r.ms_per_step, r.prefill_s, r.cpu_share);
      std::fflush(stdout);
    }
  }
  return 0;
}
