// CudaBackend: the Backend interface on one GPU (memory, streams, events, float32 ops), and the
// factory of the bf16 device runner (CudaWeights + CudaModelRunner) behind DeviceRunner.
#include "cuda_backend.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

#include "aurora/config/check.hpp"
#include "aurora/kernels/cuda/attention.hpp"
#include "aurora/kernels/cuda/cuda_check.hpp"
#include "aurora/kernels/cuda/elementwise.hpp"
#include "aurora/kernels/cuda/gemv.hpp"
#include "aurora/kernels/cuda/moe.hpp"
#include "aurora/kernels/cuda/norm_rope.hpp"
#include "aurora/kernels/cuda/sampling.hpp"
#include "cuda_placement_host.hpp"
#include "cuda_runner.hpp"
#include "cuda_weights.hpp"
#include "expert_parallel_group.hpp"
#include "model/model.hpp"

namespace aurora::runtime::cuda {

namespace kc = kernels::cuda;

namespace {

class CudaStream final : public Stream {
 public:
  explicit CudaStream(int device) {
    AURORA_CUDA_CHECK(cudaSetDevice(device));
    AURORA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  }
  ~CudaStream() override { cudaStreamDestroy(stream); }
  cudaStream_t stream = nullptr;
};

class CudaEvent final : public Event {
 public:
  explicit CudaEvent(int device) {
    AURORA_CUDA_CHECK(cudaSetDevice(device));
    AURORA_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  }
  ~CudaEvent() override { cudaEventDestroy(event); }
  cudaEvent_t event = nullptr;
};

cudaStream_t s_of(Stream& s) { return static_cast<CudaStream&>(s).stream; }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) { AURORA_CUDA_CHECK(cudaSetDevice(device)); }
  ~CudaBackend() override {
    if (attention_ws_) cudaFree(attention_ws_);
  }

  std::string name() const override { return "cuda:" + std::to_string(device_); }
  bool is_host_memory() const override { return false; }
  int device() const { return device_; }

  void* allocate(size_t bytes) override {
    AURORA_CUDA_CHECK(cudaSetDevice(device_));
    void* p = nullptr;
    AURORA_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 64)));
    AURORA_CUDA_CHECK(cudaMemset(p, 0, std::max<size_t>(bytes, 64)));
    return p;
  }
  void deallocate(void* ptr) override { cudaFree(ptr); }
  void copy(void* dst, const void* src, size_t bytes, Stream& stream) override {
    if (bytes) AURORA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s_of(stream)));
  }

  std::unique_ptr<Stream> create_stream() override { return std::make_unique<CudaStream>(device_); }
  std::unique_ptr<Event> create_event() override { return std::make_unique<CudaEvent>(device_); }
  void record(Event& event, Stream& stream) override {
    AURORA_CUDA_CHECK(cudaEventRecord(static_cast<CudaEvent&>(event).event, s_of(stream)));
  }
  void wait(Stream& stream, const Event& event) override {
    AURORA_CUDA_CHECK(cudaStreamWaitEvent(s_of(stream), static_cast<const CudaEvent&>(event).event, 0));
  }
  bool is_complete(const Event& event) override {
    const cudaError_t st = cudaEventQuery(static_cast<const CudaEvent&>(event).event);
    if (st == cudaErrorNotReady) return false;
    AURORA_CUDA_CHECK(st);
    return true;
  }
  void synchronize(Stream& stream) override { AURORA_CUDA_CHECK(cudaStreamSynchronize(s_of(stream))); }

  void embedding(const kernels::EmbeddingParams& p, Stream& s) override { kc::launch_embedding(p, s_of(s)); }
  void rms_norm(const kernels::RmsNormParams& p, Stream& s) override { kc::launch_rms_norm(p, s_of(s)); }
  void linear(const kernels::LinearParams& p, Stream& s) override { kc::launch_linear_f32(p, s_of(s)); }
  void rope(const kernels::RopeParams& p, Stream& s) override { kc::launch_rope(p, s_of(s)); }
  void write_kv_cache(const kernels::KvCacheWriteParams& p, Stream& s) override {
    kc::launch_write_kv_cache(p, s_of(s));
  }
  void paged_attention(const kernels::PagedAttentionParams& p, float*, int64_t, Stream& s) override {
    kc::PagedAttentionCudaParams c;
    c.q = p.q;
    c.out = p.out;
    c.out_dtype = kc::DType::kF32;
    c.k_cache = p.k_cache;
    c.v_cache = p.v_cache;
    c.kv_dtype = kc::DType::kF32;
    c.block_tables = p.block_tables;
    c.token_seq = p.token_seq;
    c.token_pos = p.token_pos;
    c.num_tokens = p.num_tokens;
    c.num_q_heads = p.num_q_heads;
    c.num_kv_heads = p.num_kv_heads;
    c.head_dim = p.head_dim;
    c.block_size = p.block_size;
    c.max_blocks_per_seq = p.max_blocks_per_seq;
    c.sliding_window = p.sliding_window;
    c.max_context = p.max_blocks_per_seq * p.block_size;
    c.scale = p.scale;
    // The partitioned kernel needs more room than the CPU's one-row workspace: the backend keeps its
    // own, grown on first use of a larger shape (outside the hot path of the bf16 runner).
    const size_t need = kc::attention_workspace_bytes(std::min(p.num_tokens, 4096), p.num_q_heads, p.num_kv_heads,
                                                      p.head_dim, c.max_context);
    if (need > attention_ws_bytes_) {
      AURORA_CUDA_CHECK(cudaStreamSynchronize(s_of(s)));
      if (attention_ws_) AURORA_CUDA_CHECK(cudaFree(attention_ws_));
      attention_ws_ = allocate(need);
      attention_ws_bytes_ = need;
    }
    kc::launch_paged_attention(c, attention_ws_, attention_ws_bytes_, s_of(s));
  }
  void topk_routing(const kernels::TopKRoutingParams& p, Stream& s) override { kc::launch_topk_routing(p, s_of(s)); }
  void permute(const kernels::PermuteParams& p, Stream& s) override { kc::launch_permute(p, s_of(s)); }
  void gather_rows(const kernels::GatherRowsParams& p, Stream& s) override { kc::launch_gather_rows(p, s_of(s)); }
  void combine(const kernels::CombineParams& p, Stream& s) override { kc::launch_combine(p, s_of(s)); }
  void swiglu_ffn(const kernels::SwiGluFfnParams& p, float* ws, int64_t ws_floats, Stream& s) override {
    if (p.num_rows == 0) return;
    AURORA_CHECK_MSG(ws_floats >= kernels::cpu::swiglu_workspace_floats(p.num_rows, p.intermediate),
                     "swiglu workspace");
    // gate and up side by side per row, silu(gate) * up in place, then the down projection.
    kernels::LinearParams lin;
    lin.x = p.x;
    lin.x_stride = p.x_stride;
    lin.num_rows = p.num_rows;
    lin.in_features = p.hidden;
    lin.out_features = p.intermediate;
    lin.y_stride = int64_t{2} * p.intermediate;
    lin.weight = p.w_gate;
    lin.y = ws;
    kc::launch_linear_f32(lin, s_of(s));
    lin.weight = p.w_up;
    lin.y = ws + p.intermediate;
    kc::launch_linear_f32(lin, s_of(s));
    kc::launch_silu_mul(
        kc::SiluMulCudaParams{ws, 0, ws, nullptr, p.num_rows, p.intermediate, int64_t{2} * p.intermediate}, s_of(s));
    kernels::LinearParams down;
    down.x = ws;
    down.x_stride = int64_t{2} * p.intermediate;
    down.weight = p.w_down;
    down.y = p.y;
    down.y_stride = p.y_stride;
    down.num_rows = p.num_rows;
    down.in_features = p.intermediate;
    down.out_features = p.hidden;
    kc::launch_linear_f32(down, s_of(s));
  }
  void add(const kernels::AddParams& p, Stream& s) override { kc::launch_add(p, s_of(s)); }
  void sigmoid_gate_add(const kernels::SigmoidGateAddParams& p, Stream& s) override {
    kc::launch_sigmoid_gate_add(p, s_of(s));
  }
  void clamp(const kernels::ClampParams& p, Stream& s) override { kc::launch_clamp(p, s_of(s)); }
  void sample(const kernels::SampleParams& p, void*, size_t, Stream& s) override { kc::launch_sample(p, s_of(s)); }

 private:
  int device_;
  void* attention_ws_ = nullptr;
  size_t attention_ws_bytes_ = 0;
};

class CudaDeviceRunner final : public DeviceRunner {
 public:
  explicit CudaDeviceRunner(std::unique_ptr<CudaModelRunner> runner) : runner_(std::move(runner)) {}
  const StepResult& execute(const StepBatch& batch, const kernels::SamplingRow* rows, int32_t* tokens) override {
    return runner_->execute(batch, rows, tokens);
  }
  int32_t num_kv_blocks() const override { return runner_->num_kv_blocks(); }
  std::string memory_report() const override { return runner_->memory().to_string(); }

 private:
  std::unique_ptr<CudaModelRunner> runner_;
};

// One model of an expert-parallel group as a DeviceRunner, and the group as the colocated driver.
class GroupDeviceRunner final : public DeviceRunner {
 public:
  GroupDeviceRunner(std::shared_ptr<ExpertParallelGroup> group, int32_t model)
      : group_(std::move(group)), model_(model), host_(make_cuda_placement_host(group_, model_)) {}
  const StepResult& execute(const StepBatch& batch, const kernels::SamplingRow* rows, int32_t* tokens) override {
    std::vector<GroupStep> steps(static_cast<size_t>(group_->num_models()));
    steps[static_cast<size_t>(model_)] = GroupStep{&batch, rows, tokens};
    return *group_->execute(steps)[static_cast<size_t>(model_)];
  }
  int32_t num_kv_blocks() const override { return group_->num_kv_blocks(model_); }
  std::string memory_report() const override { return group_->memory_report(model_); }
  PlacementHost* placement_host() override { return host_.get(); }

 private:
  std::shared_ptr<ExpertParallelGroup> group_;
  int32_t model_;
  std::unique_ptr<PlacementHost> host_;
};

class GroupColocatedDevice final : public ColocatedDevice {
 public:
  explicit GroupColocatedDevice(std::shared_ptr<ExpertParallelGroup> group) : group_(std::move(group)) {}
  std::vector<const StepResult*> execute_together(std::span<const DeviceStep> steps) override {
    std::vector<GroupStep> g;
    for (const DeviceStep& s : steps) g.push_back(GroupStep{s.batch, s.rows, s.tokens});
    return group_->execute(g);
  }

 private:
  std::shared_ptr<ExpertParallelGroup> group_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

cudaStream_t cuda_stream_of(Stream& stream) {
  auto* s = dynamic_cast<CudaStream*>(&stream);
  AURORA_CHECK_MSG(s != nullptr, "not a stream of a CUDA backend");
  return s->stream;
}

int cuda_device_of(const Backend& backend) {
  const auto* b = dynamic_cast<const CudaBackend*>(&backend);
  return b ? b->device() : -1;
}

Result<std::unique_ptr<DeviceRunner>> make_cuda_device_runner(const Model& model, const DeviceRunnerOptions& o,
                                                              int device) {
  try {
    auto weights = o.random_weights ? CudaWeights::random(model.config, o.seed, device, model.name)
                                    : CudaWeights::upload(model, device);
    if (!weights) return weights.error();
    CudaRunnerOptions ro;
    ro.max_tokens_per_step = o.max_tokens_per_step;
    ro.max_seqs_per_step = o.max_seqs_per_step;
    ro.kv_block_size = o.kv_block_size;
    ro.max_context = o.max_context;
    ro.kv_cache_tokens = o.kv_cache_tokens;
    ro.gpu_memory_fraction = o.gpu_memory_fraction;
    auto runner = CudaModelRunner::create(*weights, ro);
    if (!runner) return runner.error();
    return std::unique_ptr<DeviceRunner>(new CudaDeviceRunner(std::move(*runner)));
  } catch (const kc::CudaError& e) {
    return Error::make(ErrorCode::kInternal, std::string("cuda:") + std::to_string(device) + ": " + e.what());
  }
}

}  // namespace aurora::runtime::cuda

namespace aurora::runtime::cuda {

Result<DeviceGroup> make_cuda_expert_parallel_runners(const std::vector<const Model*>& models,
                                                      const DeviceRunnerOptions& o, int32_t num_ranks,
                                                      int first_device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  if (num_ranks < 1 || first_device + num_ranks > count) {
    return Error::make(ErrorCode::kUnavailable, "engine.num_ranks: " + std::to_string(num_ranks) +
                                                    " GPUs from cuda:" + std::to_string(first_device) +
                                                    " requested, the machine has " + std::to_string(count));
  }
  try {
    EpGroupOptions go;
    for (int32_t r = 0; r < num_ranks; ++r) go.devices.push_back(first_device + r);
    go.runner.max_tokens_per_step = o.max_tokens_per_step;
    go.runner.max_seqs_per_step = o.max_seqs_per_step;
    go.runner.kv_block_size = o.kv_block_size;
    go.runner.max_context = o.max_context;
    go.runner.kv_cache_tokens = o.kv_cache_tokens;
    go.runner.gpu_memory_fraction = o.gpu_memory_fraction;
    go.expert_spare_slots = o.expert_spare_slots;
    std::vector<EpGroupModel> ms;
    for (const Model* m : models)
      ms.push_back(EpGroupModel{m->name, m->config, o.random_weights ? nullptr : m, o.seed});
    auto group = ExpertParallelGroup::create(std::move(ms), go);
    if (!group) return group.error();
    std::shared_ptr<ExpertParallelGroup> shared(std::move(*group));
    DeviceGroup out;
    for (int32_t m = 0; m < shared->num_models(); ++m)
      out.runners.push_back(std::make_unique<GroupDeviceRunner>(shared, m));
    if (shared->num_models() == 2) out.together = std::make_shared<GroupColocatedDevice>(shared);
    return out;
  } catch (const kc::CudaError& e) {
    return Error::make(ErrorCode::kInternal, std::string("cuda:") + std::to_string(first_device) + ": " + e.what());
  }
}

}  // namespace aurora::runtime::cuda
