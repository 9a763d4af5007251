// out[j] += sum_t f(t, j): the column sums behind bias and norm-weight gradients.
// Included by the .cu files that need it (functors, not lambdas: no --extended-lambda).
#pragma once
#include "common.cuh"

namespace lmdr::cuda {

__device__ __forceinline__ void atomic_add_f(void* p, DType t, int64_t i, float v) {
  if (t == DType::BF16) atomicAdd(static_cast<__nv_bfloat16*>(p) + i, __float2bfloat16(v));
  else atomicAdd(static_cast<float*>(p) + i, v);
}

// block (32, 8): 32 adjacent columns (coalesced) x 8 row lanes; grid (ceil(N/32), row chunks)
template <typename F>
__global__ void column_reduce_kernel(void* out, DType out_t, int64_t T, int64_t N, F f) {
  __shared__ float part[8][33];
  int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0.f;
  if (j < N)
    for (int64_t t = int64_t(blockIdx.y) * 8 + threadIdx.y; t < T; t += int64_t(gridDim.y) * 8) s += f(t, j);
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    float total = 0.f;
    for (int r = 0; r < 8; r++) total += part[r][threadIdx.x];
    atomic_add_f(out, out_t, j, total);
  }
}

template <typename F>
void column_reduce(void* out, DType out_t, int64_t T, int64_t N, F f, cudaStream_t stream, const char* name) {
  if (T <= 0 || N <= 0) return;
  int64_t gx = ceil_div(N, 32);
  // enough row chunks to fill ~1k blocks, each chunk at least 64 rows
  int64_t gy = std::max<int64_t>(1, std::min<int64_t>(ceil_div(T, 64), ceil_div(1024, gx)));
  gy = std::min<int64_t>(gy, 65535);
  column_reduce_kernel<<<dim3(unsigned(gx), unsigned(gy)), dim3(32, 8), 0, stream>>>(out, out_t, T, N, f);
  LMDR_LAUNCH_CHECK(name);
}

}  // namespace lmdr::cuda
