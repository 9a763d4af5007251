// Device memory for one GPU: a caching allocator, so steady-state passes (the same shapes
// batch after batch) never call cudaMalloc. Everything runs on one stream per device, so a
// freed block can be handed out again at once: stream order protects the work still queued.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

namespace lmdr::cuda {

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();
  // Throws lmdr::Error on out of memory: the bytes asked and what cudaMemGetInfo says is free.
  void* alloc(size_t bytes);
  void free(void* p);
  void release_cached();  // cudaFree every cached block (also done before giving up on OOM)
  size_t bytes_in_use() const { return in_use_; }
  size_t bytes_cached() const { return cached_; }

 private:
  int device_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;  // pointer -> rounded size
  std::multimap<size_t, void*> free_;       // rounded size -> cached block
  size_t in_use_ = 0, cached_ = 0;
};

}  // namespace lmdr::cuda
