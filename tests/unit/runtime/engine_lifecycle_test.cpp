// Engine lifecycle: cancellation, refusing sinks, admission control, KV-cache queueing and
// preemption, chunked prefill that does not starve decodes, shutdown.
#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "aurora/kernels/device.hpp"
#include "engine_test_support.hpp"

using namespace aurora;
using namespace aurora::runtime;
using namespace aurora::runtime::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<Engine> engine_with(EngineOptions o) {
  auto e = create_engine(o);
  REQUIRE(e.ok());
  return std::move(*e);
}

// Submits a request whose first delta holds the engine thread in its sink until gate.release();
// returns once the engine thread is held.
std::shared_ptr<CollectingSink> submit_held(Engine& e, Gate& gate, GenerationRequest r) {
  auto sink = std::make_shared<CollectingSink>();
  sink->on_delta_hook = [&gate](int n) {
    if (n == 1) gate.wait();
    return true;
  };
  REQUIRE(e.submit(std::move(r), sink).ok());
  gate.wait_entered();
  return sink;
}

std::shared_ptr<CollectingSink> submit_ok(Engine& e, GenerationRequest r, RequestId* id = nullptr) {
  auto sink = std::make_shared<CollectingSink>();
  auto got = e.submit(std::move(r), sink);
  REQUIRE(got.ok());
  if (id) *id = *got;
  return sink;
}

}  // namespace

TEST_CASE("cancel frees the request's KV blocks within one step", "[engine][cancel]") {
  EngineOptions o;
  o.kv_cache_tokens = 4096;
  auto e = engine_with(o);
  auto sink = std::make_shared<CollectingSink>();
  // Set by this thread once submit() returns; the engine thread may reach the fifth token first
  // (a busy machine), so the hook waits for it.
  std::atomic<RequestId> id{0};
  int cancelled_at = -1;
  Engine* engine = e.get();
  sink->on_delta_hook = [&](int n) {
    if (n == 5) {
      cancelled_at = n;
      while (id.load() == 0) std::this_thread::yield();
      engine->cancel(id.load());  // from the engine thread: only enqueues
      // The request holds KV blocks right now.
      CHECK(engine->stats().kv_blocks_used > 0);
    }
    return true;
  };
  auto got = e->submit(make_request(bytes_of("a long story begins here"), 500), sink);
  REQUIRE(got.ok());
  id.store(*got);
  REQUIRE(sink->wait());
  CHECK(sink->completion.reason == FinishReason::kCancelled);
  CHECK(cancelled_at == 5);
  CHECK(sink->deltas.size() <= 6);  // at most the step already under way
  auto s = e->stats();
  CHECK(s.kv_blocks_used == 0);
  CHECK(s.num_requests_running == 0);
  e->cancel(id.load());  // finished: ignored
  e->cancel(999999);     // unknown: ignored
}

TEST_CASE("a sink that refuses a delta cancels its request at once", "[engine][cancel]") {
  auto e = engine_with({});
  auto sink = std::make_shared<CollectingSink>();
  sink->on_delta_hook = [](int n) { return n < 3; };
  REQUIRE(e->submit(make_request(bytes_of("hello"), 100), sink).ok());
  REQUIRE(sink->wait());
  CHECK(sink->completion.reason == FinishReason::kCancelled);
  CHECK(sink->deltas.size() == 3);
  CHECK(sink->finishes == 1);
  CHECK(e->stats().kv_blocks_used == 0);
}

TEST_CASE("cancelling a queued request finishes it without running it", "[engine][cancel]") {
  EngineOptions o;
  o.max_num_seqs = 1;
  auto e = engine_with(o);
  Gate gate;
  auto first = submit_held(*e, gate,
                           make_request(bytes_of("first"), 4));  // the engine thread is inside the first request's sink
  RequestId queued_id = 0;
  auto queued = submit_ok(*e, make_request(bytes_of("second"), 4), &queued_id);
  e->cancel(queued_id);
  gate.release();
  REQUIRE(queued->wait());
  CHECK(queued->completion.reason == FinishReason::kCancelled);
  CHECK(queued->tokens.empty());
  REQUIRE(first->wait());
  CHECK(first->completion.reason == FinishReason::kLength);
}

TEST_CASE("admission: queue up to max_waiting, then reject with a clear reason", "[engine][admission]") {
  EngineOptions o;
  o.max_num_seqs = 1;
  o.max_waiting = 2;
  auto e = engine_with(o);
  Gate gate;
  auto first = submit_held(*e, gate, make_request(bytes_of("first"), 3));
  auto a = submit_ok(*e, make_request(bytes_of("a"), 3));
  auto b = submit_ok(*e, make_request(bytes_of("b"), 3));
  auto rejected = e->submit(make_request(bytes_of("c"), 3), std::make_shared<CollectingSink>());
  REQUIRE_FALSE(rejected.ok());
  CHECK(rejected.error().code == ErrorCode::kResourceExhausted);
  CHECK_THAT(rejected.error().message, Catch::Contains("waiting queue is full"));
  CHECK(e->stats().num_requests_waiting >= 2);
  gate.release();
  REQUIRE(a->wait());
  REQUIRE(b->wait());
  CHECK(a->completion.reason == FinishReason::kLength);
  CHECK(b->completion.reason == FinishReason::kLength);
  // The queue drained: new requests are accepted again.
  CHECK(e->submit(make_request(bytes_of("d"), 2), std::make_shared<CollectingSink>()).ok());
}

TEST_CASE("a held engine thread shows as seconds without progress; an idle engine shows none", "[engine][health]") {
  auto e = engine_with(EngineOptions{});
  CHECK(e->stats().seconds_without_progress == 0.0);  // idle: nothing to make progress on
  Gate gate;
  auto sink = submit_held(*e, gate, make_request(bytes_of("stall"), 4));
  std::this_thread::sleep_for(300ms);
  const EngineStats held = e->stats();
  CHECK(held.num_requests_running + held.num_requests_waiting == 1);
  CHECK(held.seconds_without_progress >= 0.25);
  CHECK(held.consecutive_failed_steps == 0);
  gate.release();
  REQUIRE(sink->wait());
  CHECK(sink->completion.reason == FinishReason::kLength);
  // Idle again once the finish is published.
  for (int i = 0; i < 200 && e->stats().num_requests_running > 0; ++i) std::this_thread::sleep_for(5ms);
  CHECK(e->stats().seconds_without_progress == 0.0);
}

TEST_CASE("admission: queued prompt tokens are bounded too, naming max_waiting_tokens", "[engine][admission]") {
  EngineOptions o;
  o.max_num_seqs = 1;
  o.max_waiting = 100;        // the request count is not what binds here
  o.max_waiting_tokens = 40;  // prompt tokens accepted but not yet scheduled
  auto e = engine_with(o);
  Gate gate;
  auto first = submit_held(*e, gate, make_request(bytes_of("first"), 3));  // running: not queued any more
  const std::string p25(25, 'a');
  const std::string p15(15, 'b');
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  const bool a_ok = e->submit(make_request(bytes_of(p25), 2), a).ok();  // 25 queued
  const bool b_ok = e->submit(make_request(bytes_of(p15), 2), b).ok();  // 40: exactly the bound
  auto rejected = e->submit(make_request(bytes_of("c"), 2), std::make_shared<CollectingSink>());
  gate.release();  // before any REQUIRE: a failed one must not leave the engine blocked
  REQUIRE(a_ok);
  REQUIRE(b_ok);
  REQUIRE_FALSE(rejected.ok());
  CHECK(rejected.error().code == ErrorCode::kResourceExhausted);
  CHECK_THAT(rejected.error().message, Catch::Contains("max_waiting_tokens 40"));
  CHECK_THAT(rejected.error().message, Catch::Contains("40 prompt tokens queued"));
  REQUIRE(a->wait());
  REQUIRE(b->wait());
  CHECK(a->completion.reason == FinishReason::kLength);
  // The budget came back as the queue drained; an empty queue takes a prompt over the bound.
  auto big = submit_ok(*e, make_request(bytes_of(std::string(100, 'z')), 2));
  REQUIRE(big->wait());
  CHECK(big->completion.reason == FinishReason::kLength);
}

TEST_CASE("admission: the default token bound is the larger of 32 steps and 1024 per queued request",
          "[engine][admission]") {
  EngineOptions o;
  o.max_num_seqs = 1;
  o.max_num_batched_tokens = 16;  // 32 steps = 512 tokens
  o.max_waiting = 2;              // 1024 x 2 = 2048 tokens: the default bound
  auto e = engine_with(o);
  Gate gate;
  auto first = submit_held(*e, gate, make_request(bytes_of("first"), 3));
  auto id = e->submit(make_request(bytes_of(std::string(2000, 'l')), 1), std::make_shared<CollectingSink>());
  auto over = e->submit(make_request(bytes_of(std::string(49, 'm')), 1), std::make_shared<CollectingSink>());
  if (id.ok()) e->cancel(*id);
  gate.release();
  REQUIRE(id.ok());
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(over.error().message, Catch::Contains("max_waiting_tokens 2048"));
  REQUIRE(first->wait());
}

TEST_CASE("admission: a cancelled queued request gives its prompt tokens back", "[engine][admission]") {
  EngineOptions o;
  o.max_num_seqs = 1;
  o.max_waiting_tokens = 30;
  auto e = engine_with(o);
  Gate gate;
  auto first = submit_held(*e, gate, make_request(bytes_of("first"), 3));
  auto queued = std::make_shared<CollectingSink>();
  auto id = e->submit(make_request(bytes_of(std::string(30, 'q')), 2), queued);
  REQUIRE(id.ok());
  const bool over_accepted = e->submit(make_request(bytes_of("x"), 2), std::make_shared<CollectingSink>()).ok();
  e->cancel(*id);
  gate.release();
  CHECK_FALSE(over_accepted);
  REQUIRE(queued->wait());
  CHECK(queued->completion.reason == FinishReason::kCancelled);
  REQUIRE(first->wait());
  // Block the engine again: 20 + 10 queued tokens fit only if the cancelled 30 were given back.
  Gate gate2;
  auto second = submit_held(*e, gate2, make_request(bytes_of("second"), 3));
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  const bool a_ok = e->submit(make_request(bytes_of(std::string(20, 'r')), 2), a).ok();
  const bool b_ok = e->submit(make_request(bytes_of(std::string(10, 's')), 2), b).ok();
  gate2.release();
  REQUIRE(a_ok);
  REQUIRE(b_ok);
  REQUIRE(a->wait());
  REQUIRE(b->wait());
}

TEST_CASE("admission: invalid requests are rejected naming the field", "[engine][admission]") {
  EngineOptions o;
  o.kv_cache_tokens = 256;
  auto e = engine_with(o);
  auto info = e->models().at(0);
  CHECK(info.max_context_len == 256);
  CHECK(info.vocab_size == e->tokenizer().vocab_size());
  auto sink = std::make_shared<CollectingSink>();
  auto err = [&](GenerationRequest r) {
    auto got = e->submit(std::move(r), sink);
    REQUIRE_FALSE(got.ok());
    return got.error();
  };
  auto never_fits = err(make_request(bytes_of("hello"), 252));
  CHECK(never_fits.code == ErrorCode::kInvalidArgument);
  CHECK_THAT(never_fits.message, Catch::Contains("max_tokens") && Catch::Contains("257") && Catch::Contains("256"));
  CHECK(err(make_request({}, 4)).field == "prompt");
  CHECK(err(make_request({1, 99999}, 4)).field == "prompt[1]");
  CHECK(err(make_request({1}, 0)).field == "max_tokens");
  CHECK(err(make_request({1}, 4, -1.0f)).field == "temperature");
  auto bad_top_p = make_request({1}, 4);
  bad_top_p.sampling.top_p = 0.0f;
  CHECK(err(bad_top_p).field == "top_p");
  auto bad_model = make_request({1}, 4);
  bad_model.model = "gpt-9";
  CHECK_THAT(err(bad_model).message, Catch::Contains("gpt-9") && Catch::Contains("aurora-embedded"));
  CHECK(e->submit(make_request({1}, 4), nullptr).error().field == "sink");
}

TEST_CASE("engine options are validated naming the field", "[engine][admission]") {
  EngineOptions o;
  o.num_ranks = 0;
  auto e = create_engine(o);
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.error().message, Catch::Contains("engine.num_ranks") && Catch::Contains("got 0"));
  EngineOptions budget;
  budget.max_num_batched_tokens = 8;  // below max_num_seqs (64)
  CHECK(create_engine(budget).error().field == "engine.max_num_batched_tokens");
  EngineOptions d;
  d.device = "cuda:0";
  if (!kernels::built_with_cuda()) {
    CHECK(create_engine(d).error().code == ErrorCode::kUnsupported);
  } else if (kernels::cuda_device_count() == 0) {
    CHECK(create_engine(d).error().code == ErrorCode::kUnavailable);
  }
  d.device = "tpu:0";
  CHECK(create_engine(d).error().field == "device");
  EngineOptions m;
  m.model_dirs = {"/nonexistent/model"};
  CHECK(create_engine(m).error().code == ErrorCode::kNotFound);
}

TEST_CASE("when the KV cache is full, requests queue until blocks free up", "[engine][kv]") {
  EngineOptions o;
  o.kv_cache_tokens = 64;  // 4 blocks of 16
  auto e = engine_with(o);
  // Each needs 40 prompt tokens = 3 blocks: the second cannot start before the first ends.
  std::string prompt(40, 'x');
  auto a = submit_ok(*e, make_request(bytes_of(prompt), 8));
  auto b = submit_ok(*e, make_request(bytes_of(prompt), 8));
  REQUIRE(a->wait());
  REQUIRE(b->wait());
  CHECK(a->completion.reason == FinishReason::kLength);
  CHECK(b->completion.reason == FinishReason::kLength);
  CHECK(b->completion.timing.first_scheduled >= a->completion.timing.finished);
  CHECK(a->token_ids() == b->token_ids());
}

TEST_CASE("running out of KV mid-decode preempts the newest request, which recomputes", "[engine][kv]") {
  EngineOptions o;
  o.kv_cache_tokens = 48;  // 12 blocks of 4
  o.kv_block_size = 4;
  auto e = engine_with(o);
  const std::vector<std::string> prompts = {"The river had ris", "class Cache:\n  def", "12 + 30 = 42\n7 * "};
  std::vector<std::vector<int32_t>> alone;
  for (const auto& p : prompts) {
    auto s = submit_ok(*e, make_request(bytes_of(p), 24));
    REQUIRE(s->wait());
    alone.push_back(s->token_ids());
  }
  CHECK(e->stats().num_preemptions_total == 0);
  // Together they need 3 x 41 tokens = 33 blocks > 12: they cannot all stay.
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const auto& p : prompts) sinks.push_back(submit_ok(*e, make_request(bytes_of(p), 24)));
  for (size_t i = 0; i < sinks.size(); ++i) {
    REQUIRE(sinks[i]->wait());
    CHECK(sinks[i]->completion.reason == FinishReason::kLength);
    CHECK(sinks[i]->token_ids() == alone[i]);
  }
  auto s = e->stats();
  CHECK(s.num_preemptions_total > 0);
  CHECK(s.kv_blocks_used == 0);
}

TEST_CASE("chunked prefill of a long prompt does not starve running decodes", "[engine][batching]") {
  EngineOptions o;
  o.max_num_seqs = 4;
  o.max_num_batched_tokens = 16;
  auto e = engine_with(o);
  Gate gate;
  auto runner = std::make_shared<CollectingSink>();
  std::atomic<int> runner_deltas{0};
  runner->on_delta_hook = [&](int n) {
    runner_deltas = n;
    if (n == 2) gate.wait();
    return true;
  };
  REQUIRE(e->submit(make_request(bytes_of("decode me"), 60), runner).ok());
  gate.wait_entered();
  auto prompt = std::make_shared<CollectingSink>();
  int runner_at_first_token = -1;
  prompt->on_delta_hook = [&](int n) {
    if (n == 1) runner_at_first_token = runner_deltas.load();
    return true;
  };
  REQUIRE(e->submit(make_request(bytes_of(std::string(150, 'a')), 4), prompt).ok());
  gate.release();
  REQUIRE(prompt->wait());
  REQUIRE(runner->wait());
  // 150 prompt tokens at <= 15 per step (one token of the budget goes to the decode): >= 10
  // steps of prefill, each of which also decoded the running request.
  CHECK(runner_at_first_token >= 2 + 10);
}

TEST_CASE("shutdown drains, then refuses new work", "[engine]") {
  auto e = engine_with({});
  auto a = submit_ok(*e, make_request(bytes_of("drain me"), 8));
  e->shutdown(std::chrono::seconds(30));
  CHECK(a->finishes == 1);
  CHECK(a->completion.reason == FinishReason::kLength);
  CHECK_FALSE(e->ready());
  auto late = e->submit(make_request(bytes_of("late"), 2), std::make_shared<CollectingSink>());
  CHECK(late.error().code == ErrorCode::kUnavailable);
  e->shutdown(std::chrono::milliseconds(0));  // idempotent
}

TEST_CASE("shutdown with no drain time cancels running requests", "[engine]") {
  auto e = engine_with({});
  Gate gate;
  auto a = submit_held(*e, gate, make_request(bytes_of("long"), 1000));
  std::thread stopper([&] { e->shutdown(std::chrono::milliseconds(0)); });
  std::this_thread::sleep_for(20ms);
  gate.release();
  stopper.join();
  CHECK(a->finishes == 1);
  CHECK(a->completion.reason == FinishReason::kCancelled);
  CHECK(a->deltas.size() < 1000);
}
