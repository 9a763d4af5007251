#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace lmdr::cpu {
namespace {

thread_local bool in_parallel_region = false;

class Pool {
 public:
  explicit Pool(int threads) : size_(threads) {
    for (int i = 1; i < threads; i++) workers_.emplace_back([this] { worker_loop(); });
  }
  int size() const { return size_; }

  void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> region(region_mutex_);  // one region at a time
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      next_.store(0);
      chunks_left_ = (n + chunk - 1) / chunk;
      error_ = nullptr;
      generation_++;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return chunks_left_ == 0 && busy_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Take chunks until none are left; runs on workers and on the caller.
  void work() {
    in_parallel_region = true;
    int64_t finished = 0;
    for (;;) {
      int64_t begin = next_.fetch_add(chunk_);
      if (begin >= n_) break;
      try {
        (*fn_)(begin, std::min(n_, begin + chunk_));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      finished++;
    }
    in_parallel_region = false;
    if (finished) {
      std::lock_guard<std::mutex> lock(mutex_);
      chunks_left_ -= finished;
      if (chunks_left_ == 0) done_.notify_all();
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (!fn_) continue;
        busy_++;
      }
      work();
      std::lock_guard<std::mutex> lock(mutex_);
      busy_--;
      if (busy_ == 0 && chunks_left_ == 0) done_.notify_all();
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex region_mutex_, mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, chunks_left_ = 0;
  int busy_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
};

int configured_threads() {
  const char* env = std::getenv("LMDR_NUM_THREADS");
  if (env && *env) {
    int n = std::atoi(env);
    if (n >= 1) return std::min(n, 1024);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? int(hw) : 1;
}

// Never destroyed: workers stay parked until the process exits, so no join at unload.
Pool& pool() {
  static Pool* p = new Pool(configured_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = num_threads();
  if (in_parallel_region || threads == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  // About 4 chunks per thread balances uneven chunks without much scheduling overhead.
  int64_t chunk = std::max(grain, (n + 4 * threads - 1) / (4 * threads));
  pool().run(n, chunk, fn);
}

}  // namespace lmdr::cpu
