// Backend: where the model's kernels run. One interface for the CPU reference backend (here) and
// the CUDA backend (runtime/cuda), in the spirit of ggml's backend vtable: memory, streams,
// events, and one entry point per kernel taking that kernel's parameter struct.
//
// Semantics every backend keeps:
// - Work submitted to one stream runs in submission order; different streams may overlap.
//   record(event, stream) marks a point in a stream; wait(stream, event) makes later work on
//   `stream` wait for it. The CPU backend runs everything at submission (serial streams) and its
//   events are complete as soon as they are recorded, so the engine's overlap logic (a comm stream
//   waiting on a compute event) runs, and is tested, with the same call sequence on CPU.
// - Kernel entry points never allocate and never synchronise; workspace comes from the caller.
// - Pointers passed to ops are in the backend's memory (host memory for CPU).
// Thread safety: a Backend may be shared by several rank threads; each uses its own streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "aurora/config/error.hpp"
#include "aurora/kernels/attention.hpp"
#include "aurora/kernels/elementwise.hpp"
#include "aurora/kernels/embedding.hpp"
#include "aurora/kernels/linear.hpp"
#include "aurora/kernels/moe_permute.hpp"
#include "aurora/kernels/moe_routing.hpp"
#include "aurora/kernels/rms_norm.hpp"
#include "aurora/kernels/rope.hpp"
#include "aurora/kernels/sampling.hpp"
#include "aurora/kernels/swiglu_ffn.hpp"

namespace aurora::runtime {

class Stream {
 public:
  virtual ~Stream() = default;
};

class Event {
 public:
  virtual ~Event() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  virtual bool is_host_memory() const = 0;

  // Memory. allocate() returns zero-filled memory of at least `bytes` (aligned to 64 bytes).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes, Stream& stream) = 0;

  // Streams and events.
  virtual std::unique_ptr<Stream> create_stream() = 0;
  virtual std::unique_ptr<Event> create_event() = 0;
  virtual void record(Event& event, Stream& stream) = 0;
  virtual void wait(Stream& stream, const Event& event) = 0;
  virtual bool is_complete(const Event& event) = 0;
  virtual void synchronize(Stream& stream) = 0;

  // Kernels (see each parameter struct's header for its contract).
  virtual void embedding(const kernels::EmbeddingParams& p, Stream& stream) = 0;
  virtual void rms_norm(const kernels::RmsNormParams& p, Stream& stream) = 0;
  virtual void linear(const kernels::LinearParams& p, Stream& stream) = 0;
  virtual void rope(const kernels::RopeParams& p, Stream& stream) = 0;
  virtual void write_kv_cache(const kernels::KvCacheWriteParams& p, Stream& stream) = 0;
  virtual void paged_attention(const kernels::PagedAttentionParams& p, float* workspace, int64_t workspace_floats,
                               Stream& stream) = 0;
  virtual void topk_routing(const kernels::TopKRoutingParams& p, Stream& stream) = 0;
  virtual void permute(const kernels::PermuteParams& p, Stream& stream) = 0;
  virtual void gather_rows(const kernels::GatherRowsParams& p, Stream& stream) = 0;
  virtual void combine(const kernels::CombineParams& p, Stream& stream) = 0;
  virtual void swiglu_ffn(const kernels::SwiGluFfnParams& p, float* workspace, int64_t workspace_floats,
                          Stream& stream) = 0;
  virtual void add(const kernels::AddParams& p, Stream& stream) = 0;
  virtual void sigmoid_gate_add(const kernels::SigmoidGateAddParams& p, Stream& stream) = 0;
  virtual void clamp(const kernels::ClampParams& p, Stream& stream) = 0;
  virtual void sample(const kernels::SampleParams& p, void* workspace, size_t workspace_bytes, Stream& stream) = 0;
};

// RAII owner of one backend allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes) : backend_(&backend), ptr_(backend.allocate(bytes)), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept : backend_(o.backend_), ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = o.backend_;
      ptr_ = o.ptr_;
      bytes_ = o.bytes_;
      o.ptr_ = nullptr;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void reset() {
    if (ptr_) backend_->deallocate(ptr_);
    ptr_ = nullptr;
  }

 private:
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The CPU reference backend: host memory, serial streams, events complete at once, kernels::cpu.
std::unique_ptr<Backend> make_cpu_backend();

// "cpu"; "cuda:N" (kUnsupported in a build without CUDA, kUnavailable without that GPU); "auto":
// GPU 0 when this build has CUDA and a GPU is present, else the CPU.
Result<std::unique_ptr<Backend>> make_backend(const std::string& device);

}  // namespace aurora::runtime
