#include "kernel_trace.hpp"

#include <cstdio>

#if !defined(AURORA_HAS_CUPTI)

namespace aurora::bench {
bool kernel_trace_start() {
  std::printf("   trace: this build has no CUPTI\n");
  return false;
}
void kernel_trace_report(int32_t) {}
}  // namespace aurora::bench

#else

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace aurora::bench {
namespace {

struct KernelRecord {
  uint64_t start = 0, end = 0;
  uint32_t correlation = 0, graph = 0;
  std::string name;  // short name and grid
};

std::mutex g_mutex;
std::vector<KernelRecord> g_records;
constexpr size_t kBufferBytes = size_t{8} << 20;

// "void ns::(anonymous namespace)::kernel<1, 2>(Params, int)" -> "kernel<1, 2>".
std::string short_name(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : mangled;
  std::free(d);
  for (const char* drop : {"(anonymous namespace)::", "aurora::kernels::cuda::", "aurora::"}) {
    for (size_t at; (at = s.find(drop)) != std::string::npos;) s.erase(at, std::string(drop).size());
  }
  if (s.rfind("void ", 0) == 0) s.erase(0, 5);
  // Cut the parameter list: the first '(' outside template brackets.
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0) return s.substr(0, i);
  }
  return s;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    KernelRecord r;
    r.start = k->start;
    r.end = k->end;
    r.correlation = k->correlationId;
    r.graph = k->graphId;
    r.name = short_name(k->name) + " [" + std::to_string(k->gridX) + "x" + std::to_string(k->gridY) + "x" +
             std::to_string(k->gridZ) + "]";
    g_records.push_back(std::move(r));
  }
  std::free(buffer);
}

// AURORA_TRACE_TIMELINE=FROM,COUNT (or FROM:COUNT): kernels FROM .. FROM + COUNT - 1 of the last replay, each with
// its start after the previous kernel's end (negative: launched early, programmatic dependent
// launch) and the time its end adds to the step (end minus the previous kernel's end).
void print_timeline(const std::vector<const KernelRecord*>& ks) {
  const char* v = std::getenv("AURORA_TRACE_TIMELINE");
  if (!v) return;
  size_t from = 0, count = 0;
  if (std::sscanf(v, "%zu%*[,:]%zu", &from, &count) != 2 || from >= ks.size()) return;
  count = std::min(count, ks.size() - from);
  std::printf("     timeline of kernels %zu .. %zu of the last replay (us)\n", from, from + count - 1);
  std::printf("     %-60s %9s %9s %9s\n", "kernel [grid]", "start-gap", "duration", "adds");
  for (size_t i = from; i < from + count; ++i) {
    const KernelRecord& k = *ks[i];
    const double prev_end = i > 0 ? double(ks[i - 1]->end) : double(k.start);
    std::printf("     %-60.60s %9.2f %9.2f %9.2f\n", k.name.c_str(), (double(k.start) - prev_end) / 1e3,
                double(k.end - k.start) / 1e3, (double(k.end) - prev_end) / 1e3);
  }
}

}  // namespace

bool kernel_trace_start() {
  if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) {
    std::printf("   trace: CUPTI kernel activity unavailable\n");
    return false;
  }
  return true;
}

void kernel_trace_report(int32_t steps) {
  cuptiActivityFlushAll(1);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  std::vector<KernelRecord> records;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    records.swap(g_records);
  }
  // Replays: the kernels of one graph launch share its correlation id.
  std::map<uint32_t, std::vector<const KernelRecord*> > replays;
  for (const auto& r : records) {
    if (r.graph) replays[r.correlation].push_back(&r);
  }
  std::vector<std::vector<const KernelRecord*>*> ordered;
  for (auto& [id, ks] : replays) {
    std::sort(ks.begin(), ks.end(), [](auto* a, auto* b) { return a->start < b->start; });
    ordered.push_back(&ks);
  }
  std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->front()->start < b->front()->start; });
  if (ordered.empty()) {
    std::printf("   trace: no graph replays recorded\n");
    return;
  }
  const size_t n = std::min<size_t>(ordered.size(), static_cast<size_t>(std::max(1, steps)));
  struct Sum {
    int64_t calls = 0;
    double ns = 0;
    uint64_t first = 0;  // position in the step, for the printing order
  };
  std::map<std::string, Sum> per;
  double wall = 0, busy = 0, gaps = 0;
  for (size_t i = ordered.size() - n; i < ordered.size(); ++i) {
    const auto& ks = *ordered[i];
    uint64_t reach = ks.front()->start;
    for (const auto* k : ks) {
      busy += double(k->end - k->start);
      if (k->start > reach) gaps += double(k->start - reach);
      reach = std::max(reach, k->end);
      Sum& s = per[k->name];
      if (s.calls == 0) s.first = k->start - ks.front()->start;
      ++s.calls;
      s.ns += double(k->end - k->start);
    }
    wall += double(reach - ks.front()->start);
  }
  const double dn = double(n);
  std::printf(
      "   trace of %zu graph replays (%zu kernels each): wall %.1f us, kernels %.1f us, idle gaps %.1f us "
      "per step\n",
      n, ordered.back()->size(), wall / dn / 1e3, busy / dn / 1e3, gaps / dn / 1e3);
  print_timeline(*ordered.back());
  std::vector<std::pair<std::string, Sum> > rows(per.begin(), per.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  std::printf("     %-72s %6s %8s %9s\n", "kernel [grid]", "calls", "mean us", "us/step");
  for (const auto& [name, s] : rows) {
    std::printf("     %-72.72s %6.0f %8.2f %9.1f\n", name.c_str(), double(s.calls) / dn, s.ns / double(s.calls) / 1e3,
                s.ns / dn / 1e3);
  }
}

}  // namespace aurora::bench

#endif  // AURORA_HAS_CUPTI
