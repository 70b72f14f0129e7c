// The CPU reference backend: host memory, serial streams (work runs when submitted), events that
// are complete once recorded, and kernels::cpu for every op.
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "aurora/runtime/backend.hpp"

namespace aurora::runtime {
namespace {

class CpuStream final : public Stream {};
class CpuEvent final : public Event {};

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool is_host_memory() const override { return true; }

  // Large buffers (KV cache, activations) come from mmap: zero pages that the OS commits only
  // when first written, so a generous KV cache costs no time or memory until it is used.
  void* allocate(size_t bytes) override {
    const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    if (rounded >= kMmapThreshold) {
      void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      std::lock_guard lock(mu_);
      mapped_[p] = rounded;
      return p;
    }
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    return p;
  }
  void deallocate(void* ptr) override {
    if (!ptr) return;
    {
      std::lock_guard lock(mu_);
      auto it = mapped_.find(ptr);
      if (it != mapped_.end()) {
        ::munmap(ptr, it->second);
        mapped_.erase(it);
        return;
      }
    }
    std::free(ptr);
  }
  void copy(void* dst, const void* src, size_t bytes, Stream&) override {
    if (bytes) std::memmove(dst, src, bytes);
  }

  std::unique_ptr<Stream> create_stream() override { return std::make_unique<CpuStream>(); }
  std::unique_ptr<Event> create_event() override { return std::make_unique<CpuEvent>(); }
  void record(Event&, Stream&) override {}
  void wait(Stream&, const Event&) override {}
  bool is_complete(const Event&) override { return true; }
  void synchronize(Stream&) override {}

  void embedding(const kernels::EmbeddingParams& p, Stream&) override { kernels::cpu::embedding(p); }
  void rms_norm(const kernels::RmsNormParams& p, Stream&) override { kernels::cpu::rms_norm(p); }
  void linear(const kernels::LinearParams& p, Stream&) override { kernels::cpu::linear(p); }
  void rope(const kernels::RopeParams& p, Stream&) override { kernels::cpu::rope(p); }
  void write_kv_cache(const kernels::KvCacheWriteParams& p, Stream&) override { kernels::cpu::write_kv_cache(p); }
  void paged_attention(const kernels::PagedAttentionParams& p, float* ws, int64_t ws_floats, Stream&) override {
    kernels::cpu::paged_attention(p, ws, ws_floats);
  }
  void topk_routing(const kernels::TopKRoutingParams& p, Stream&) override { kernels::cpu::topk_routing(p); }
  void permute(const kernels::PermuteParams& p, Stream&) override { kernels::cpu::permute(p); }
  void gather_rows(const kernels::GatherRowsParams& p, Stream&) override { kernels::cpu::gather_rows(p); }
  void combine(const kernels::CombineParams& p, Stream&) override { kernels::cpu::combine(p); }
  void swiglu_ffn(const kernels::SwiGluFfnParams& p, float* ws, int64_t ws_floats, Stream&) override {
    kernels::cpu::swiglu_ffn(p, ws, ws_floats);
  }
  void add(const kernels::AddParams& p, Stream&) override { kernels::cpu::add(p); }
  void sigmoid_gate_add(const kernels::SigmoidGateAddParams& p, Stream&) override { kernels::cpu::sigmoid_gate_add(p); }
  void clamp(const kernels::ClampParams& p, Stream&) override { kernels::cpu::clamp(p); }
  void sample(const kernels::SampleParams& p, void* ws, size_t ws_bytes, Stream&) override {
    kernels::cpu::sample(p, ws, ws_bytes);
  }

 private:
  static constexpr size_t kMmapThreshold = size_t{1} << 20;
  std::mutex mu_;
  std::unordered_map<void*, size_t> mapped_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace aurora::runtime
