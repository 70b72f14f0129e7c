// ExpertSlots: the per-rank slot table behind expert migration on GPU ranks.
#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>

#include "online/expert_slots.hpp"

using namespace aurora;
using namespace aurora::runtime;

TEST_CASE("expert slots: held experts in order, spares free", "[online][slots]") {
  // Layer 0 dense, layer 1 holds experts 1 and 5 in 4 slots.
  ExpertSlots slots(1, 8, {{}, {1, 5}}, {0, 4});
  CHECK(slots.num_slots(0) == 0);
  CHECK(slots.num_slots(1) == 4);
  CHECK(slots.free_slots(1) == 2);
  CHECK(slots.slot_of(1, 1) == 0);
  CHECK(slots.slot_of(1, 5) == 1);
  CHECK(slots.slot_of(1, 2) == -1);
  CHECK(slots.in_use(1) == std::vector<int32_t>{1, 5, -1, -1});
}

TEST_CASE("expert slots: a reserved copy is not in use until committed", "[online][slots]") {
  ExpertSlots slots(0, 8, {{0, 1}}, {3});
  auto s = slots.reserve(0, 4);
  REQUIRE(s.ok());
  CHECK(*s == 2);
  CHECK(slots.slot_of(0, 4) == -1);  // staged, never read by a step
  CHECK(slots.in_use(0) == std::vector<int32_t>{0, 1, -1});
  CHECK(slots.free_slots(0) == 0);
  slots.commit(0, *s);
  CHECK(slots.slot_of(0, 4) == 2);
  // The expert that left frees its slot; the next copy reuses it.
  slots.release(0, 0);
  CHECK(slots.slot_of(0, 0) == -1);
  auto again = slots.reserve(0, 6);
  REQUIRE(again.ok());
  CHECK(*again == 0);
  slots.cancel(0, *again);  // abandoned: free again, never in use
  CHECK(slots.free_slots(0) == 1);
  CHECK(slots.slot_of(0, 6) == -1);
}

TEST_CASE("expert slots: exhaustion and duplicates are clear errors", "[online][slots]") {
  ExpertSlots slots(3, 8, {{0, 1}}, {3});
  REQUIRE(slots.reserve(0, 2).ok());
  auto full = slots.reserve(0, 3);
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == ErrorCode::kResourceExhausted);
  CHECK(full.error().message.find("layer 0, rank 3") != std::string::npos);
  CHECK(full.error().message.find("--expert-spare-slots") != std::string::npos);
  auto held = slots.reserve(0, 1);
  REQUIRE_FALSE(held.ok());
  CHECK(held.error().message.find("already holds expert 1") != std::string::npos);
  auto receiving = slots.reserve(0, 2);
  REQUIRE_FALSE(receiving.ok());
  CHECK(receiving.error().message.find("is receiving expert 2") != std::string::npos);
  CHECK_FALSE(slots.reserve(0, 9).ok());
  CHECK_THROWS(slots.commit(0, 0));   // in use, not reserved
  CHECK_THROWS(slots.release(0, 5));  // not held
}

TEST_CASE("expert slots: concurrent reservations never share a slot", "[online][slots]") {
  ExpertSlots slots(0, 64, {{}}, {32});
  std::vector<int32_t> got(32, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        auto s = slots.reserve(0, t * 8 + i);
        if (s.ok()) got[static_cast<size_t>(t * 8 + i)] = *s;
      }
    });
  }
  for (auto& th : threads) th.join();
  std::sort(got.begin(), got.end());
  for (int32_t i = 0; i < 32; ++i) CHECK(got[static_cast<size_t>(i)] == i);
  CHECK(slots.free_slots(0) == 0);
}
