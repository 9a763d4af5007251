// Shared by every CUDA source: error checking that names the op, dtype-generic loads and
// stores, warp/block reductions, and the NVTX range helper.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <string>

#include "../cpp/core/tensor.h"

namespace lmdr::cuda {

// The op currently running on this thread ("matmul", "attention_forward", ...), so any CUDA
// error can say where it happened. Set by OpScope in cuda_backend.cu.
const char* current_op();

// Throws lmdr::Error naming the op, the failing call and CUDA's message.
[[noreturn]] void throw_cuda_error(const char* call, cudaError_t err, const char* file, int line);

#define LMDR_CUDA_CHECK(call)                                                       \
  do {                                                                              \
    cudaError_t lmdr_err_ = (call);                                                 \
    if (lmdr_err_ != cudaSuccess) ::lmdr::cuda::throw_cuda_error(#call, lmdr_err_, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: configuration errors show here, asynchronous faults at the next
// synchronisation (set LMDR_CUDA_SYNC=1 to synchronise after every op and pin them down).
#define LMDR_LAUNCH_CHECK(name) ::lmdr::cuda::check_launch(name, __FILE__, __LINE__)
void check_launch(const char* kernel, const char* file, int line);

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Grid size for grid-stride loops: enough blocks to fill the GPU, never more than needed.
inline unsigned grid_for(int64_t n, int block = 256) {
  int64_t g = ceil_div(n, block);
  if (g > 65535LL * 32) g = 65535LL * 32;
  return unsigned(g < 1 ? 1 : g);
}

// ---- dtype-generic element access (the branch is uniform across a launch) ----
__device__ __forceinline__ float load_f(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::F64: return float(static_cast<const double*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void store_f(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(v); break;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half(v); break;
    case DType::F64: static_cast<double*>(p)[i] = double(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}
// Eight bf16 values in one 16-byte access: the vector paths of memory-bound bf16 kernels use it
// when every pointer is 16-byte aligned (aligned16) and the row length is a multiple of 8.
union Bf16x8 {
  uint4 v;
  __nv_bfloat16 h[8];
};
inline __host__ __device__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Rounds v the way storing it in dtype t would (bf16/f16 round-to-nearest-even).
__device__ __forceinline__ float round_to(DType t, float v) {
  if (t == DType::BF16) return __bfloat162float(__float2bfloat16(v));
  if (t == DType::F16) return __half2float(__float2half(v));
  return v;
}

// Compile-time typed access for the hot kernels (attention, top-k).
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half(x); }

// ---- reductions ----
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < int(blockDim.x >> 5) ? partial[lane] : 0.f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// ---- NVTX: one range per op, visible in `nsys profile` ----
struct NvtxRange {
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace lmdr::cuda
