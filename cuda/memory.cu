#include "memory.h"

#include <string>

#include "common.cuh"

namespace lmdr::cuda {

// Small blocks round to 512 B, large ones to 2 MiB, so recurring shapes hit the same sizes.
static size_t round_size(size_t bytes) {
  if (bytes < (1u << 20)) return (bytes + 511) / 512 * 512;
  return (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

CachingAllocator::~CachingAllocator() {
  // Process exit: the driver may already be gone; errors are ignored on purpose.
  for (auto& [size, p] : free_) cudaFree(p);
}

void* CachingAllocator::alloc(size_t bytes) {
  size_t size = round_size(bytes ? bytes : 1);
  std::lock_guard<std::mutex> lock(mutex_);
  // best fit among cached blocks, wasting at most a quarter
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 4) {
    void* p = it->second;
    size_t got = it->first;
    free_.erase(it);
    cached_ -= got;
    live_[p] = got;
    in_use_ += got;
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    for (auto& [s, q] : free_) cudaFree(q);
    free_.clear();
    cached_ = 0;
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(std::string(current_op()) + ": CUDA out of memory on cuda:" + std::to_string(device_) + ": asked " +
                std::to_string(bytes) + " bytes (" + std::to_string(bytes >> 20) + " MiB); " +
                std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) + " MiB, lmdr holds " +
                std::to_string(in_use_ >> 20) + " MiB (" + cudaGetErrorString(err) +
                "). Lower the batch size or --max-tokens.");
  }
  live_[p] = size;
  in_use_ += size;
  return p;
}

void CachingAllocator::free(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(p);
  if (it == live_.end()) return;
  free_.emplace(it->second, p);
  cached_ += it->second;
  in_use_ -= it->second;
  live_.erase(it);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, p] : free_) cudaFree(p);
  free_.clear();
  cached_ = 0;
}

}  // namespace lmdr::cuda
