// Per-op GPU time for LMDR_CUDA_PROFILE=1 (op_profile.h). Host-side bookkeeping only; the
// report at exit reads no CUDA state, so it is safe after the driver has shut down.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "op_profile.h"

namespace lmdr::cuda {

namespace {
struct Pair {
  const char* op;
  cudaEvent_t start, stop;
};
struct Stat {
  long calls = 0;
  double ms = 0;
};
struct Profile {
  std::vector<Pair> pending;
  std::vector<cudaEvent_t> pool;
  std::map<std::string, Stat> stats;
  int depth = 0;
  ~Profile() {
    if (stats.empty()) return;
    double total = 0;
    for (auto& [name, s] : stats) total += s.ms;
    std::vector<std::pair<std::string, Stat>> rows(stats.begin(), stats.end());
    std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
    std::fprintf(stderr, "lmdr CUDA op profile (LMDR_CUDA_PROFILE=1): %.1f ms of GPU time in ops\n", total);
    std::fprintf(stderr, "  %-28s %10s %12s %7s %12s\n", "op", "calls", "total ms", "share", "mean us");
    for (auto& [name, s] : rows)
      std::fprintf(stderr, "  %-28s %10ld %12.2f %6.1f%% %12.1f\n", name.c_str(), s.calls, s.ms, 100 * s.ms / total,
                   1000 * s.ms / double(s.calls));
  }
  cudaEvent_t event() {
    if (!pool.empty()) {
      cudaEvent_t e = pool.back();
      pool.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    return e;
  }
};
Profile& profile() {
  static Profile p;
  return p;
}
}  // namespace

bool op_profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LMDR_CUDA_PROFILE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

void op_profile_begin(const char* op, cudaStream_t s) {
  Profile& p = profile();
  if (p.depth++ > 0) return;  // an op inside an op: the outer one is timed
  cudaEvent_t a = p.event();
  cudaEventRecord(a, s);
  p.pending.push_back({op, a, nullptr});
}

void op_profile_end(cudaStream_t s) {
  Profile& p = profile();
  if (--p.depth > 0 || p.pending.empty()) return;
  cudaEvent_t b = p.event();
  cudaEventRecord(b, s);
  p.pending.back().stop = b;
  if (p.pending.size() >= 8192) {  // bound the events in flight
    cudaEventSynchronize(b);
    op_profile_collect();
  }
}

void op_profile_collect() {
  Profile& p = profile();
  std::vector<Pair> open;
  for (Pair& x : p.pending) {
    if (!x.stop) {
      open.push_back(x);
      continue;
    }
    float ms = 0;
    if (cudaEventSynchronize(x.stop) == cudaSuccess && cudaEventElapsedTime(&ms, x.start, x.stop) == cudaSuccess) {
      Stat& st = p.stats[x.op];
      st.calls++;
      st.ms += ms;
    }
    p.pool.push_back(x.start);
    p.pool.push_back(x.stop);
  }
  p.pending.swap(open);
}

}  // namespace lmdr::cuda
