// TokenChannel: bounded, coalescing, never blocking the producer, and waking the consumer.
#include "token_channel.hpp"

#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <catch2/catch.hpp>

using namespace aurora::server;

TEST_CASE("past max_events, deltas of a tag coalesce; past max bytes the producer is refused", "[channel]") {
  net::io_context ioc;
  auto ch = std::make_shared<TokenChannel>(net::make_strand(ioc), /*max_events=*/2, /*max_pending_bytes=*/10);
  CHECK(ch->push_delta(0, "ab", 1));
  CHECK(ch->push_delta(1, "cd", 1));
  CHECK(ch->push_delta(0, "ef", 1));    // full: merged into tag 0's delta
  CHECK(ch->push_delta(1, "gh", 1));    // merged into tag 1's delta
  CHECK(!ch->push_delta(0, "ijk", 1));  // 8 + 3 bytes > 10: a reader this slow is cancelled
  std::vector<StreamEvent> events;
  REQUIRE(ch->pop_all(events));
  REQUIRE(events.size() == 2);
  CHECK(events[0].text == "abef");
  CHECK(events[0].num_tokens == 2);
  CHECK(events[1].text == "cdgh");
  CHECK(ch->push_delta(0, "ijk", 1));  // popped bytes no longer count
  aurora::runtime::Completion done;
  ch->push_finish(0, done);  // always accepted
  CHECK(ch->push_delta(1, "x", 1));
  ch->pop_all(events);
  CHECK(events.size() == 3);
  ch->close();
  CHECK(!ch->push_delta(0, "y", 1));
  ch->push_finish(1, done);
  CHECK(!ch->pop_all(events));
}

TEST_CASE("logprobs stay aligned with their tokens when deltas coalesce, and count as pending bytes",
          "[channel][logprobs]") {
  net::io_context ioc;
  auto lp = [](int32_t id, size_t top) {
    aurora::runtime::GeneratedLogprobs g;
    g.sampled = {id, -1.0f};
    g.top.assign(top, {id, -1.0f});
    return std::vector<aurora::runtime::GeneratedLogprobs>{g};
  };
  const size_t entry = sizeof(aurora::runtime::TokenLogprob);
  auto ch = std::make_shared<TokenChannel>(net::make_strand(ioc), /*max_events=*/1,
                                           /*max_pending_bytes=*/3 + 5 * entry);
  CHECK(ch->push_delta(0, "a", 1, lp(7, 1)));   // 1 + 2 entries
  CHECK(ch->push_delta(0, "", 1, lp(8, 0)));    // held-back text: the token's logprobs still come
  CHECK(!ch->push_delta(0, "b", 1, lp(9, 2)));  // 3 more entries would pass the bound
  CHECK(ch->push_delta(0, "b", 1, lp(9, 1)));
  std::vector<StreamEvent> events;
  REQUIRE(ch->pop_all(events));
  REQUIRE(events.size() == 1);
  CHECK(events[0].text == "ab");
  CHECK(events[0].num_tokens == 3);
  REQUIRE(events[0].logprobs.size() == 3);
  CHECK(events[0].logprobs[0].sampled.token_id == 7);
  CHECK(events[0].logprobs[1].sampled.token_id == 8);
  CHECK(events[0].logprobs[2].sampled.token_id == 9);
  CHECK(events[0].logprobs[2].top.size() == 1);
}

TEST_CASE("a waiting consumer is woken by a push from another thread, or times out", "[channel]") {
  net::io_context ioc;
  auto strand = net::make_strand(ioc);
  auto ch = std::make_shared<TokenChannel>(strand, 16, 1 << 20);
  std::vector<TokenChannel::WaitResult> results;
  net::co_spawn(
      strand,
      [&]() -> awaitable<void> {
        results.push_back(co_await ch->wait(std::chrono::milliseconds(20)));    // nothing: timeout
        results.push_back(co_await ch->wait(std::chrono::milliseconds(5000)));  // woken by the producer
        std::vector<StreamEvent> events;
        ch->pop_all(events);
        results.push_back(events.size() == 1 ? TokenChannel::WaitResult::kReady : TokenChannel::WaitResult::kClosed);
        ch->close();
        results.push_back(co_await ch->wait(std::chrono::milliseconds(5000)));
      },
      net::detached);
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ch->push_delta(3, "token", 1);
  });
  const auto start = std::chrono::steady_clock::now();
  ioc.run();
  producer.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  REQUIRE(results.size() == 4);
  CHECK(results[0] == TokenChannel::WaitResult::kTimeout);
  CHECK(results[1] == TokenChannel::WaitResult::kReady);
  CHECK(results[2] == TokenChannel::WaitResult::kReady);
  CHECK(results[3] == TokenChannel::WaitResult::kClosed);
}
