// Prefill (flash) attention on tensor cores against cpu::paged_attention: prefill chunks cut into
// tiles of up to 64 positions, with and without a cached prefix, GQA groups 1..8, head_dim 64 and
// 128, a sliding window, shuffled block tables; tokens outside the tiles (a decode token in the
// same batch) are left untouched.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "attention_test_support.hpp"
#include "aurora/kernels/cuda/attention.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;

namespace {

struct Chunk {
  int32_t seq, start, count;
};

}  // namespace

TEST_CASE("prefill attention on tensor cores matches the CPU twin", "[gpu][attention]") {
  for (AttentionGeometry s : {AttentionGeometry{32, 8, 128, 0}, AttentionGeometry{32, 4, 128, 0},
                              AttentionGeometry{16, 16, 128, 0}, AttentionGeometry{8, 2, 64, 100},
                              AttentionGeometry{4, 4, 64, 0}}) {
    INFO("heads " << s.hq << "/" << s.hkv << " head_dim " << s.hd << " window " << s.window);
    const int32_t seqs = 3;
    s.max_blocks = 32;
    const int32_t num_blocks = seqs * s.max_blocks + 8, kv_dim = s.hkv * s.hd;
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(13));
    std::vector<int32_t> tables(pool.begin(), pool.begin() + seqs * s.max_blocks);
    // A whole prompt (3 tiles, the last partial), a decode token of another sequence (not in any
    // tile), then a chunk after a cached prefix of 300 positions (a full tile and a 1-token tile).
    const std::vector<Chunk> chunks = {{0, 0, 150}, {2, 400, 1}, {1, 300, 65}};
    std::vector<int32_t> seq, pos, tiles;
    for (const Chunk& c : chunks) {
      const int32_t first = int32_t(seq.size());
      for (int32_t i = 0; i < c.count; ++i) {
        seq.push_back(c.seq);
        pos.push_back(c.start + i);
      }
      if (c.count == 1) continue;  // decode tokens go to the other kernels
      for (int32_t t = 0; t < c.count; t += kc::kPrefillTileTokens) {
        tiles.push_back(first + t);
        tiles.push_back(std::min(kc::kPrefillTileTokens, c.count - t));
      }
    }
    const int32_t tokens = int32_t(seq.size()), num_tiles = int32_t(tiles.size() / 2);
    auto q = random_floats(size_t(tokens) * s.hq * s.hd, 80);
    auto k = rounded_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 81));
    auto v = rounded_bf16(random_floats(k.size(), 82));
    std::vector<float> want = s.cpu_reference(q, k, v, tables, seq, pos);

    DeviceArray<float> dq(q);
    auto dk16 = upload_bf16(k), dv16 = upload_bf16(v);
    DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos), dtiles(tiles);
    const int64_t row = int64_t{s.hq} * s.hd;
    const int32_t decode_token = 150;  // chunk {2, 400, 1}
    for (auto out_dtype : {kc::DType::kF32, kc::DType::kBF16}) {
      const bool f32 = out_dtype == kc::DType::kF32;
      INFO("out " << (f32 ? "f32" : "bf16"));
      DeviceArray<float> out(q.size());
      DeviceArray<uint16_t> out16(q.size());
      out.poison();
      out16.poison();
      kc::PagedAttentionCudaParams p =
          s.gpu(dq.get(), dk16.get(), dv16.get(), kc::DType::kBF16, dtables.get(), dseq.get(), dpos.get(), tokens);
      REQUIRE(kc::prefill_attention_supports(p));
      p.out = f32 ? static_cast<void*>(out.get()) : static_cast<void*>(out16.get());
      p.out_dtype = out_dtype;
      kc::launch_prefill_attention(p, dtiles.get(), num_tiles, nullptr);
      std::vector<float> got = f32 ? out.download() : download_bf16(out16);
      // The decode token is in no tile: still poisoned (NaN); the rest matches the CPU twin.
      for (int64_t i = decode_token * row; i < (decode_token + 1) * row; ++i) {
        CHECK(std::isnan(got[size_t(i)]));
        got[size_t(i)] = want[size_t(i)] = 0.0f;
      }
      for (int32_t t = 0; t < tokens; t += 37) {  // a few rows on their own, for a precise message
        INFO("token " << t << " at position " << pos[size_t(t)]);
        const std::vector<float> g(got.begin() + t * row, got.begin() + (t + 1) * row);
        const std::vector<float> w(want.begin() + t * row, want.begin() + (t + 1) * row);
        CHECK(relative_error(g, w) < kTolBf16Out);
      }
      CHECK(relative_error(got, want) < kTolBf16Out);
    }
  }
}

TEST_CASE("prefill attention gives a row the same bits in any tile of its chunk's cut", "[gpu][attention]") {
  // The same 130-token prompt cut as 64 + 64 + 2 and as 50 + 64 + 16, without and with a sliding
  // window (whose first key differs from tile to tile): each row depends on its own position and the
  // cache only.
  for (int32_t window : {0, 100, 37}) {
    INFO("window " << window);
    const AttentionGeometry s{8, 2, 128, window, 16, 16};
    const int32_t num_blocks = 16, kv_dim = s.hkv * s.hd, tokens = 130;
    std::vector<int32_t> tables(s.max_blocks);
    std::iota(tables.begin(), tables.end(), 0);
    std::shuffle(tables.begin(), tables.end(), std::mt19937(17));
    std::vector<int32_t> seq(tokens, 0), pos(tokens);
    std::iota(pos.begin(), pos.end(), 0);
    auto q = random_floats(size_t(tokens) * s.hq * s.hd, 90);
    auto k = rounded_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 91));
    auto v = rounded_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 92));
    auto dk16 = upload_bf16(k), dv16 = upload_bf16(v);
    DeviceArray<float> dq(q);
    DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos);
    kc::PagedAttentionCudaParams p =
        s.gpu(dq.get(), dk16.get(), dv16.get(), kc::DType::kBF16, dtables.get(), dseq.get(), dpos.get(), tokens);
    p.out_dtype = kc::DType::kF32;
    std::vector<std::vector<float>> results;
    for (const std::vector<int32_t>& cut : {std::vector<int32_t>{0, 64, 64, 64, 128, 2},
                                            std::vector<int32_t>{0, 50, 50, 64, 114, 16}}) {
      DeviceArray<int32_t> dtiles(cut);
      DeviceArray<float> out(q.size());
      out.poison();
      p.out = out.get();
      kc::launch_prefill_attention(p, dtiles.get(), int32_t(cut.size() / 2), nullptr);
      results.push_back(out.download());
    }
    CHECK(relative_error(results[0], s.cpu_reference(q, k, v, tables, seq, pos)) < kTolBf16Out);
    CHECK(results[0] == results[1]);
  }
}
