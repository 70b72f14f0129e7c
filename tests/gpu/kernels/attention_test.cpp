// Paged attention on the GPU against cpu::paged_attention: decode and prefill tokens, one and many
// partitions, GQA groups 1..16, sliding windows, bf16 and float32 caches and outputs, the three bf16
// kernels (the default: tensor-core decode where it applies; partitioned: partition_size 64, 128;
// cluster: cluster_blocks 1..16); and a row's bits alone vs in a batch, and across cluster sizes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <utility>

#include "attention_test_support.hpp"
#include "aurora/kernels/cuda/attention.hpp"
#include "gpu_test_support.hpp"

using namespace aurora;
using namespace aurora::test;
namespace kc = aurora::kernels::cuda;
namespace kcpu = aurora::kernels::cpu;

TEST_CASE("paged attention matches the CPU twin", "[gpu][attention]") {
  for (AttentionGeometry s :
       {AttentionGeometry{8, 2, 128, 0}, AttentionGeometry{4, 4, 16, 0}, AttentionGeometry{32, 4, 128, 0},
        AttentionGeometry{16, 1, 64, 50}, AttentionGeometry{4, 2, 24, 0}}) {
    INFO("heads " << s.hq << "/" << s.hkv << " head_dim " << s.hd << " window " << s.window);
    s.max_blocks = 48;
    const int32_t seqs = 3, max_blocks = s.max_blocks, num_blocks = 160;
    const int32_t kv_dim = s.hkv * s.hd;
    // Block tables: a shuffled permutation of the pool.
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(7));
    std::vector<int32_t> tables(size_t(seqs) * max_blocks);
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = pool[i];
    // Decode tokens at chosen positions, then a prefill chunk of sequence 2.
    std::vector<int32_t> seq = {0, 1, 2, 0, 1, 2, 0};
    std::vector<int32_t> pos = {0, 5, 127, 128, 129, 300, 700};
    for (int32_t p = 10; p < 22; ++p) {
      seq.push_back(2);
      pos.push_back(p);
    }
    const int32_t tokens = int32_t(seq.size());
    auto q = random_floats(size_t(tokens) * s.hq * s.hd, 40);
    auto k = random_floats(size_t(num_blocks) * s.block_size * kv_dim, 41);
    auto v = random_floats(k.size(), 42);
    for (auto kv_dtype : {kc::DType::kF32, kc::DType::kBF16}) {
      const bool f32 = kv_dtype == kc::DType::kF32;
      const std::vector<float> want =
          s.cpu_reference(q, f32 ? k : rounded_bf16(k), f32 ? v : rounded_bf16(v), tables, seq, pos);

      DeviceArray<float> dq(q), dk(k), dv(v);
      auto dk16 = upload_bf16(k), dv16 = upload_bf16(v);
      DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos);
      const size_t ws_bytes = kc::attention_workspace_bytes(tokens, s.hq, s.hkv, s.hd, s.max_context());
      DeviceArray<unsigned char> workspace(ws_bytes);
      workspace.zero();
      for (auto out_dtype : {kc::DType::kF32, kc::DType::kBF16}) {
        DeviceArray<float> out(q.size());
        DeviceArray<uint16_t> out16(q.size());
        kc::PagedAttentionCudaParams p =
            s.gpu(dq.get(), f32 ? static_cast<const void*>(dk.get()) : static_cast<const void*>(dk16.get()),
                  f32 ? static_cast<const void*>(dv.get()) : static_cast<const void*>(dv16.get()), kv_dtype,
                  dtables.get(), dseq.get(), dpos.get(), tokens);
        p.out = out_dtype == kc::DType::kF32 ? static_cast<void*>(out.get()) : static_cast<void*>(out16.get());
        p.out_dtype = out_dtype;
        // bf16 caches: both partition sizes, the default kernel, and the cluster kernel (negative:
        // -blocks per cluster).
        for (int32_t partition : f32 ? std::vector<int32_t>{0} : std::vector<int32_t>{0, 64, 128, -16, -2, -1}) {
          p.partition_size = std::max(partition, 0);
          p.cluster_blocks = std::max(-partition, 0);
          for (int run = 0; run < 2; ++run) {  // the second run checks that the merge tickets reset
            INFO("kv " << (f32 ? "f32" : "bf16") << ", out " << (out_dtype == kc::DType::kF32 ? "f32" : "bf16")
                       << ", partition " << partition << ", run " << run);
            out.poison();
            out16.poison();
            kc::launch_paged_attention(p, workspace.get(), ws_bytes, nullptr);
            // The default kernel for these 19 tokens on a bf16 cache is the tensor-core one (head_dim
            // 64 or 128), which rounds q and the probabilities to bf16.
            const bool mma = !f32 && partition == 0 && (s.hd == 64 || s.hd == 128);
            if (out_dtype == kc::DType::kF32) {
              CHECK(relative_error(out.download(), want) < (mma ? kTolBf16Out : 1e-5));
            } else {
              CHECK(relative_error(download_bf16(out16), want) < kTolBf16Out);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("paged attention over more partitions than threads (long context, bf16 cache)", "[gpu][attention]") {
  // 64-position partitions and a 5000-position context: 79 partitions, more than the 64 threads of
  // a block, so the last block merges through the per-element path.
  const AttentionGeometry s{8, 2, 64, 0, 16, 320};
  const int32_t num_blocks = 330, kv_dim = s.hkv * s.hd;
  std::vector<int32_t> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937(9));
  std::vector<int32_t> tables(pool.begin(), pool.begin() + s.max_blocks);
  std::vector<int32_t> seq = {0, 0, 0}, pos = {4999, 4095, 63};
  const int32_t tokens = int32_t(seq.size());
  auto q = random_floats(size_t(tokens) * s.hq * s.hd, 60);
  auto k = rounded_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 61));
  auto v = rounded_bf16(random_floats(k.size(), 62));
  const std::vector<float> want = s.cpu_reference(q, k, v, tables, seq, pos);

  DeviceArray<float> dq(q), out(q.size());
  auto dk16 = upload_bf16(k), dv16 = upload_bf16(v);
  DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos);
  const size_t ws_bytes = kc::attention_workspace_bytes(tokens, s.hq, s.hkv, s.hd, s.max_context());
  DeviceArray<unsigned char> workspace(ws_bytes);
  workspace.zero();
  kc::PagedAttentionCudaParams p =
      s.gpu(dq.get(), dk16.get(), dv16.get(), kc::DType::kBF16, dtables.get(), dseq.get(), dpos.get(), tokens);
  p.out = out.get();
  p.out_dtype = kc::DType::kF32;
  for (int32_t partition : {0, 64, 128, -16, -1}) {  // negative: the cluster kernel (5 chunks per range)
    INFO("partition " << partition);
    p.partition_size = std::max(partition, 0);
    p.cluster_blocks = std::max(-partition, 0);
    out.poison();
    kc::launch_paged_attention(p, workspace.get(), ws_bytes, nullptr);
    // 0: the tensor-core decode kernel (313 steps of 16 keys, 79 per warp), bf16 q and probabilities.
    CHECK(relative_error(out.download(), want) < (partition == 0 ? kTolBf16Out : 1e-5));
  }
}

TEST_CASE("paged attention gives a row the same bits alone and in any batch (bf16 cache)", "[gpu][attention]") {
  // Mixtral-, Qwen3- and OLMoE-like groups; contexts of 1 .. 3000 positions (one to 12 chunks per
  // block of the cluster kernel), a sliding window; each token then alone, with another max_context
  // (and every other one with a grid bounded by its own context: positions_bound).
  for (AttentionGeometry s :
       {AttentionGeometry{32, 8, 128, 0}, AttentionGeometry{32, 4, 128, 0}, AttentionGeometry{16, 16, 128, 0},
        AttentionGeometry{8, 2, 64, 700}, AttentionGeometry{16, 1, 256, 0}}) {
    INFO("heads " << s.hq << "/" << s.hkv << " head_dim " << s.hd << " window " << s.window);
    s.max_blocks = 192;
    const int32_t seqs = 2, max_blocks = s.max_blocks, num_blocks = 2 * max_blocks;
    const int32_t kv_dim = s.hkv * s.hd;
    std::vector<int32_t> pool(num_blocks);
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), std::mt19937(11));
    std::vector<int32_t> tables(pool.begin(), pool.begin() + seqs * max_blocks);
    const std::vector<int32_t> seq = {0, 1, 0, 1, 1, 0, 1, 0};
    const std::vector<int32_t> pos = {0, 31, 33, 520, 1023, 1100, 2047, 2999};
    const int32_t tokens = int32_t(seq.size());
    auto q = random_floats(size_t(tokens) * s.hq * s.hd, 70);
    auto dk16 = upload_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 71));
    auto dv16 = upload_bf16(random_floats(size_t(num_blocks) * s.block_size * kv_dim, 72));
    DeviceArray<float> dq(q);
    DeviceArray<int32_t> dtables(tables), dseq(seq), dpos(pos);
    const size_t ws_bytes = kc::attention_workspace_bytes(tokens, s.hq, s.hkv, s.hd, s.max_context());
    DeviceArray<unsigned char> workspace(ws_bytes);
    workspace.zero();
    // 128: the partitioned kernel; 0: the cluster kernel sized by the grid (forced: by default it
    // runs only for launches of <= 4 tokens); each must give a row the same bits alone and in a batch.
    std::vector<float> cluster_out;  // the batch through the cluster kernel (partition 0)
    for (int32_t partition : {0, 128}) {
      INFO("partition " << partition);
      kc::PagedAttentionCudaParams p =
          s.gpu(dq.get(), dk16.get(), dv16.get(), kc::DType::kBF16, dtables.get(), dseq.get(), dpos.get(), tokens);
      p.out_dtype = kc::DType::kF32;
      p.partition_size = partition;
      p.cluster_blocks = partition == 0 ? -1 : 0;
      DeviceArray<float> batch(q.size()), alone(q.size());
      batch.poison();
      alone.poison();
      p.out = batch.get();
      kc::launch_paged_attention(p, workspace.get(), ws_bytes, nullptr);
      const int64_t row = int64_t{s.hq} * s.hd;
      // Every token of the batch alone, into `alone`, with another max_context (and every other one
      // with a grid of just the partitions it needs: positions_bound).
      auto each_alone = [&](const kc::PagedAttentionCudaParams& batch_params) {
        alone.poison();
        for (int32_t i = 0; i < tokens; ++i) {
          kc::PagedAttentionCudaParams one = batch_params;
          one.num_tokens = 1;
          one.q = dq.get() + i * row;
          one.out = alone.get() + i * row;
          one.token_seq = dseq.get() + i;
          one.token_pos = dpos.get() + i;
          one.max_context = pos[size_t(i)] + 1 + 16 * i;
          one.positions_bound = i % 2 ? pos[size_t(i)] + 1 : 0;
          kc::launch_paged_attention(one, workspace.get(), ws_bytes, nullptr);
        }
        return alone.download();
      };
      const auto a = batch.download(), b = each_alone(p);
      // The cluster kernel really ran: a launch that fell back to the partitioned kernel (a device
      // that refuses the cluster configuration) would give the partitioned kernel's bits.
      if (partition == 0) cluster_out = a;
      // (Shapes the cluster kernel does not take run the partitioned kernel for both.)
      if (partition == 128 && kc::cluster_attention_supports(s.hd, s.hq / s.hkv)) CHECK(a != cluster_out);
      for (int32_t i = 0; i < tokens; ++i) {
        INFO("token " << i << " at position " << pos[size_t(i)]);
        CHECK(std::equal(a.begin() + i * row, a.begin() + (i + 1) * row, b.begin() + i * row));
      }
      // A grid sized by the batch's longest context (positions_bound) instead of max_context.
      kc::PagedAttentionCudaParams bounded = p;
      bounded.positions_bound = *std::max_element(pos.begin(), pos.end()) + 1;
      bounded.out = alone.get();
      alone.poison();
      kc::launch_paged_attention(bounded, workspace.get(), ws_bytes, nullptr);
      CHECK(alone.download() == a);
      if (partition != 0) continue;
      // The tensor-core decode kernel (the default for more than 4 tokens, head_dim 64 or 128): a row
      // alone and in the batch, the grid bounded or not, and near the CPU twin.
      // Ranges of 512 keys (this batch's size), of 128 and of 64 (a small launch's: every token alone),
      // each block on its own with a ticket merge, or clusters of 16 or 4 ranges merged in shared
      // memory (the small launches' default): a row's bits for a given range size (and cluster size)
      // do not depend on the batch. Clusters take ranges of max(the range, 64 x ceil(keys / (64 x
      // blocks))) keys: at 512 in clusters of 16 (these contexts are shorter than 8192) the same
      // ranges as the ticket kernel, and the same bits.
      std::vector<float> mma_512;
      for (auto [range, clustered] : {std::pair{0, -1}, {128, -1}, {64, -1}, {512, 16}, {64, 16}, {64, 4}}) {
        if (s.hd != 64 && s.hd != 128) break;
        INFO("tensor-core decode kernel, ranges of " << range << " keys, clusters of " << clustered);
        kc::PagedAttentionCudaParams mma = p;
        mma.cluster_blocks = 0;
        mma.decode_mma = true;
        mma.decode_mma_range = range;
        mma.decode_mma_cluster = clustered;  // (-1: tokens alone would take clusters by default)
        mma.out = batch.get();
        batch.poison();
        kc::launch_paged_attention(mma, workspace.get(), ws_bytes, nullptr);
        const auto m = batch.download();
        CHECK(m != cluster_out);  // another kernel ran
        if (range == 0) mma_512 = m;
        if (range == 512) CHECK(m == mma_512);
        if (range < 512 && range != 0) CHECK(m != mma_512);  // more ranges merge in another order
        // Alone, the default range of a small launch is 64: pin the batch's.
        if (range == 0) mma.decode_mma_range = 512;
        const auto ma = each_alone(mma);
        for (int32_t i = 0; i < tokens; ++i) {
          INFO("token " << i << " at position " << pos[size_t(i)]);
          CHECK(std::equal(m.begin() + i * row, m.begin() + (i + 1) * row, ma.begin() + i * row));
        }
        CHECK(relative_error(m, a) < kTolBf16Out);  // near the cluster kernel's float32 queries
      }
      if (s.hd == 64 || s.hd == 128) {  // a cluster size the kernel does not take: an error naming it
        kc::PagedAttentionCudaParams bad = p;
        bad.cluster_blocks = 0;
        bad.decode_mma = true;
        bad.decode_mma_cluster = 2;
        CHECK_THROWS_WITH(kc::launch_paged_attention(bad, workspace.get(), ws_bytes, nullptr),
                          Catch::Contains("decode_mma_cluster must be -1, 0, 4, 8 or 16, got 2"));
      }
      // The cluster kernel with every cluster size (ranges per block 16 .. 1): the same bits.
      for (int32_t blocks : {1, 2, 4, 8, 16}) {
        INFO("cluster blocks " << blocks);
        kc::PagedAttentionCudaParams forced = p;
        forced.cluster_blocks = blocks;
        forced.out = alone.get();
        alone.poison();
        kc::launch_paged_attention(forced, workspace.get(), ws_bytes, nullptr);
        CHECK(alone.download() == a);
      }
    }
  }
}

TEST_CASE("write_kv_cache matches the CPU twin", "[gpu][attention]") {
  const int32_t tokens = 5, hkv = 2, hd = 16, slots_total = 40;
  auto k = random_floats(size_t(tokens) * hkv * hd, 50), v = random_floats(k.size(), 51);
  std::vector<int32_t> slots = {3, 39, 0, 17, 18};
  std::vector<float> kc_want(size_t(slots_total) * hkv * hd, 0.0f), vc_want(kc_want.size(), 0.0f);
  kcpu::write_kv_cache(
      kernels::KvCacheWriteParams{k.data(), v.data(), kc_want.data(), vc_want.data(), slots.data(), tokens, hkv, hd});
  DeviceArray<float> dk(k), dv(v), kcache(kc_want.size()), vcache(kc_want.size());
  kcache.zero();
  vcache.zero();
  DeviceArray<int32_t> dslots(slots);
  kc::launch_write_kv_cache(
      kernels::KvCacheWriteParams{dk.get(), dv.get(), kcache.get(), vcache.get(), dslots.get(), tokens, hkv, hd},
      nullptr);
  CHECK(relative_error(kcache.download(), kc_want) == 0.0);
  CHECK(relative_error(vcache.download(), vc_want) == 0.0);
}
