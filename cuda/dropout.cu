// LoRA dropout with the counter-based hash shared with the CPU backend (cpp/cpu/dropout_hash.h),
// so a mask is the same on every device: element (t, j) is kept iff
// dropout_uniform(dropout_row_hash(seed, row_keys[t]), j) >= float(p); kept values scale by
// 1/(1-p); p >= 1 drops everything. The backward applies the same map to dout.
#include "../cpp/cpu/dropout_hash.h"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----
// A block is 32 x 8 threads: threadIdx.y picks one of 8 rows, threadIdx.x strides over its
// columns; the row hash is computed once per row. (The first version hashed the row and divided
// i / N per element: 669 us per [67,584 x 896] bf16 call on an H200, about 12x the copy floor.)

constexpr int kRowsPerBlock = 8;

// out[T,N], x[T,N], row_keys[T]; any dtypes, one element per step
__global__ void dropout_rows_kernel(void* out, DType ot, const void* x, DType xt, int64_t T, int64_t N, float p,
                                    float keep_scale, uint64_t seed, const uint64_t* row_keys) {
  for (int64_t t = int64_t(blockIdx.y) * kRowsPerBlock + threadIdx.y; t < T; t += int64_t(gridDim.y) * kRowsPerBlock) {
    const uint64_t r = dropout_row_hash(seed, row_keys[t]);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      const bool drop = p > 0.f && dropout_uniform(r, uint64_t(j)) < p;
      store_f(out, ot, t * N + j, drop ? 0.f : load_f(x, xt, t * N + j) * keep_scale);
    }
  }
}

// the same map on bf16 rows, 8 columns per 16-byte access (N % 8 == 0, 16-byte aligned rows)
__global__ void dropout_rows_bf16x8_kernel(__nv_bfloat16* out, const __nv_bfloat16* x, int64_t T, int64_t N, float p,
                                           float keep_scale, uint64_t seed, const uint64_t* row_keys) {
  const int64_t n8 = N / 8;
  for (int64_t t = int64_t(blockIdx.y) * kRowsPerBlock + threadIdx.y; t < T; t += int64_t(gridDim.y) * kRowsPerBlock) {
    const uint64_t r = dropout_row_hash(seed, row_keys[t]);
    const uint4* src = reinterpret_cast<const uint4*>(x + t * N);
    uint4* dst = reinterpret_cast<uint4*>(out + t * N);
    for (int64_t c = threadIdx.x; c < n8; c += blockDim.x) {
      Bf16x8 v;
      v.v = src[c];
      for (int k = 0; k < 8; k++) {
        const bool drop = p > 0.f && dropout_uniform(r, uint64_t(c * 8 + k)) < p;
        v.h[k] = __float2bfloat16(drop ? 0.f : __bfloat162float(v.h[k]) * keep_scale);
      }
      dst[c] = v.v;
    }
  }
}

// ---- launchers ----

void dropout_forward(void* out, DType ot, const void* x, DType xt, int64_t T, int64_t N, double p, uint64_t seed,
                     const uint64_t* row_keys, cudaStream_t s) {
  if (T * N <= 0) return;
  float keep_scale = p >= 1 ? 0.f : float(1.0 / (1.0 - p));
  const dim3 block(32, kRowsPerBlock);
  const dim3 grid(1, unsigned(std::min<int64_t>(ceil_div(T, kRowsPerBlock), 65535)));
  const bool vec = ot == DType::BF16 && xt == DType::BF16 && N % 8 == 0 &&
                   aligned16(out) && aligned16(x);
  if (vec) {
    dropout_rows_bf16x8_kernel<<<grid, block, 0, s>>>(static_cast<__nv_bfloat16*>(out),
                                                      static_cast<const __nv_bfloat16*>(x), T, N, float(p),
                                                      keep_scale, seed, row_keys);
    LMDR_LAUNCH_CHECK("dropout_rows_bf16x8_kernel");
  } else {
    dropout_rows_kernel<<<grid, block, 0, s>>>(out, ot, x, xt, T, N, float(p), keep_scale, seed, row_keys);
    LMDR_LAUNCH_CHECK("dropout_rows_kernel");
  }
}

}  // namespace lmdr::cuda
