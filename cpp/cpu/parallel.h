// A small fork-join thread pool for the CPU backend.
//
// parallel_for(n, grain, fn) calls fn(begin, end) on disjoint chunks covering [0, n), on the
// pool's workers plus the calling thread, and returns when every chunk is done. It is safe to
// call from several threads at once (libuv runs several AsyncWorkers): one parallel region
// runs at a time, later callers wait their turn. A parallel_for issued from inside a chunk runs
// inline on that thread, so nesting never deadlocks. An exception thrown by a chunk is
// re-thrown to the caller after the region ends.
//
// Size: $LMDR_NUM_THREADS when set (>= 1), else std::thread::hardware_concurrency().
#pragma once
#include <cstdint>
#include <functional>

namespace lmdr::cpu {

int num_threads();

// grain: the smallest chunk worth sending to another thread (>= 1).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace lmdr::cpu
