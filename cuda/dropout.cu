// LoRA dropout with the counter-based hash shared with the CPU backend (cpp/cpu/dropout_hash.h),
// so a mask is the same on every device: element (t, j) is kept iff
// dropout_uniform(dropout_row_hash(seed, row_keys[t]), j) >= float(p); kept values scale by
// 1/(1-p); p >= 1 drops everything. The backward applies the same map to dout.
#include "../cpp/cpu/dropout_hash.h"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// out[T,N], x[T,N], row_keys[T]
__global__ void dropout_kernel(void* out, DType ot, const void* x, DType xt, int64_t T, int64_t N, float p,
                               float keep_scale, uint64_t seed, const uint64_t* row_keys) {
  const int64_t n = T * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i / N, j = i - t * N;
    bool drop = p > 0.f && dropout_uniform(dropout_row_hash(seed, row_keys[t]), uint64_t(j)) < p;
    store_f(out, ot, i, drop ? 0.f : load_f(x, xt, i) * keep_scale);
  }
}

// ---- launchers ----

void dropout_forward(void* out, DType ot, const void* x, DType xt, int64_t T, int64_t N, double p, uint64_t seed,
                     const uint64_t* row_keys, cudaStream_t s) {
  if (T * N <= 0) return;
  float keep_scale = p >= 1 ? 0.f : float(1.0 / (1.0 - p));
  dropout_kernel<<<grid_for(T * N), 256, 0, s>>>(out, ot, x, xt, T, N, float(p), keep_scale, seed, row_keys);
  LMDR_LAUNCH_CHECK("dropout_kernel");
}

}  // namespace lmdr::cuda
