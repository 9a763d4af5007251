// Elementwise ops: dtype conversion (upload/download), fill, add, scale, axpy, bias add and
// its gradient. Grid-stride loops; every dtype goes through load_f/store_f (or doubles for
// conversions, so int32/int64 ids and float64 host data survive exactly).
#include "column_reduce.cuh"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

__device__ __forceinline__ double load_d(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::I32: return double(static_cast<const int32_t*>(p)[i]);
    case DType::I64: return double(static_cast<const int64_t*>(p)[i]);
    default: return double(load_f(p, t, i));
  }
}
__device__ __forceinline__ void store_d(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::I32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::F32: static_cast<float*>(p)[i] = float(v); break;
    // double -> bf16/f16 straight, not via float: one rounding, like the CPU's conversion
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __double2bfloat16(v); break;
    case DType::F16: static_cast<__half*>(p)[i] = __double2half(v); break;
  }
}

__global__ void convert_kernel(void* dst, DType dt, const void* src, DType st, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_d(dst, dt, i, load_d(src, st, i));
}

__global__ void fill_kernel(void* dst, DType t, int64_t n, double value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_d(dst, t, i, value);
}

__global__ void add_kernel(void* out, DType ot, const void* a, DType at, const void* b, DType bt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_f(out, ot, i, load_f(a, at, i) + load_f(b, bt, i));
}

__global__ void scale_kernel(void* x, DType t, int64_t n, float s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_f(x, t, i, load_f(x, t, i) * s);
}

__global__ void axpy_kernel(void* y, DType yt, float a, const void* x, DType xt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_f(y, yt, i, fmaf(a, load_f(x, xt, i), load_f(y, yt, i)));
}

__global__ void add_bias_kernel(void* y, DType yt, const void* bias, DType bt, int64_t T, int64_t N) {
  int64_t n = T * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_f(y, yt, i, load_f(y, yt, i) + load_f(bias, bt, i % N));
}

// bf16 vector forms of add, axpy and the bias add (8 per 16-byte access; the residual adds and
// bias adds of an encode are memory-bound: the generic kernels' 2-byte accesses took 8% of it)
__global__ void add_bf16x8_kernel(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n8) {
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n8; v += int64_t(gridDim.x) * blockDim.x) {
    Bf16x8 x, y, o;
    x.v = reinterpret_cast<const uint4*>(a)[v];
    y.v = reinterpret_cast<const uint4*>(b)[v];
    for (int k = 0; k < 8; k++) o.h[k] = __float2bfloat16(__bfloat162float(x.h[k]) + __bfloat162float(y.h[k]));
    reinterpret_cast<uint4*>(out)[v] = o.v;
  }
}

__global__ void axpy_bf16x8_kernel(__nv_bfloat16* y, float a, const __nv_bfloat16* x, int64_t n8) {
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n8; v += int64_t(gridDim.x) * blockDim.x) {
    Bf16x8 xv, yv;
    xv.v = reinterpret_cast<const uint4*>(x)[v];
    yv.v = reinterpret_cast<const uint4*>(y)[v];
    for (int k = 0; k < 8; k++) yv.h[k] = __float2bfloat16(fmaf(a, __bfloat162float(xv.h[k]), __bfloat162float(yv.h[k])));
    reinterpret_cast<uint4*>(y)[v] = yv.v;
  }
}

// y[T, N] += bias[N], N % 8 == 0
__global__ void add_bias_bf16x8_kernel(__nv_bfloat16* y, const __nv_bfloat16* bias, int64_t T, int64_t N) {
  const int64_t n8 = T * N / 8, N8 = N / 8;
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n8; v += int64_t(gridDim.x) * blockDim.x) {
    Bf16x8 yv, bv;
    yv.v = reinterpret_cast<const uint4*>(y)[v];
    bv.v = reinterpret_cast<const uint4*>(bias)[v % N8];
    for (int k = 0; k < 8; k++) yv.h[k] = __float2bfloat16(__bfloat162float(yv.h[k]) + __bfloat162float(bv.h[k]));
    reinterpret_cast<uint4*>(y)[v] = yv.v;
  }
}

struct LoadAt {  // f(t, j) = x[t, j]
  const void* x;
  DType t;
  int64_t N;
  __device__ float operator()(int64_t r, int64_t j) const { return load_f(x, t, r * N + j); }
};

// ---- launchers ----

void convert_forward(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  convert_kernel<<<grid_for(n), 256, 0, stream>>>(dst, dst_t, src, src_t, n);
  LMDR_LAUNCH_CHECK("convert_kernel");
}

void fill_forward(void* dst, DType t, int64_t n, double value, cudaStream_t stream) {
  if (n <= 0) return;
  if (value == 0.0) {  // all-zero bits for every dtype
    LMDR_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_t(n) * dtype_size(t), stream));
    return;
  }
  fill_kernel<<<grid_for(n), 256, 0, stream>>>(dst, t, n, value);
  LMDR_LAUNCH_CHECK("fill_kernel");
}

void add_forward(void* out, DType ot, const void* a, DType at, const void* b, DType bt, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  if (ot == DType::BF16 && at == DType::BF16 && bt == DType::BF16 && n % 8 == 0 && aligned16(out) && aligned16(a) &&
      aligned16(b)) {
    add_bf16x8_kernel<<<grid_for(n / 8), 256, 0, stream>>>(static_cast<__nv_bfloat16*>(out),
                                                           static_cast<const __nv_bfloat16*>(a),
                                                           static_cast<const __nv_bfloat16*>(b), n / 8);
    LMDR_LAUNCH_CHECK("add_bf16x8_kernel");
    return;
  }
  add_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, a, at, b, bt, n);
  LMDR_LAUNCH_CHECK("add_kernel");
}

void scale_forward(void* x, DType t, int64_t n, float s, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), 256, 0, stream>>>(x, t, n, s);
  LMDR_LAUNCH_CHECK("scale_kernel");
}

void axpy_forward(void* y, DType yt, float a, const void* x, DType xt, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  if (yt == DType::BF16 && xt == DType::BF16 && n % 8 == 0 && aligned16(y) && aligned16(x)) {
    axpy_bf16x8_kernel<<<grid_for(n / 8), 256, 0, stream>>>(static_cast<__nv_bfloat16*>(y), a,
                                                            static_cast<const __nv_bfloat16*>(x), n / 8);
    LMDR_LAUNCH_CHECK("axpy_bf16x8_kernel");
    return;
  }
  axpy_kernel<<<grid_for(n), 256, 0, stream>>>(y, yt, a, x, xt, n);
  LMDR_LAUNCH_CHECK("axpy_kernel");
}

void add_bias_forward(void* y, DType yt, const void* bias, DType bt, int64_t T, int64_t N, cudaStream_t stream) {
  if (T * N <= 0) return;
  if (yt == DType::BF16 && bt == DType::BF16 && N % 8 == 0 && aligned16(y) && aligned16(bias)) {
    add_bias_bf16x8_kernel<<<grid_for(T * N / 8), 256, 0, stream>>>(static_cast<__nv_bfloat16*>(y),
                                                                    static_cast<const __nv_bfloat16*>(bias), T, N);
    LMDR_LAUNCH_CHECK("add_bias_bf16x8_kernel");
    return;
  }
  add_bias_kernel<<<grid_for(T * N), 256, 0, stream>>>(y, yt, bias, bt, T, N);
  LMDR_LAUNCH_CHECK("add_bias_kernel");
}

void bias_backward(void* dbias, DType dbt, const void* dy, DType dyt, int64_t T, int64_t N, cudaStream_t stream) {
  column_reduce(dbias, dbt, T, N, LoadAt{dy, dyt, N}, stream, "bias_backward");
}

}  // namespace lmdr::cuda

namespace lmdr::cuda {

// dst[R, dst_col..+ncols] = src[R, src_col..+ncols] (fused projections split and re-assembled)
__global__ void copy_columns_kernel(void* dst, int64_t ldd, int64_t dst_col, const void* src, int64_t lds,
                                    int64_t src_col, DType t, int64_t R, int64_t ncols) {
  const int64_t n = R * ncols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / ncols, c = i - r * ncols;
    store_f(dst, t, r * ldd + dst_col + c, load_f(src, t, r * lds + src_col + c));
  }
}

void copy_columns(void* dst, int64_t ldd, int64_t dst_col, const void* src, int64_t lds, int64_t src_col, DType t,
                  int64_t R, int64_t ncols, cudaStream_t stream) {
  if (R * ncols <= 0) return;
  copy_columns_kernel<<<grid_for(R * ncols), 256, 0, stream>>>(dst, ldd, dst_col, src, lds, src_col, t, R, ncols);
  LMDR_LAUNCH_CHECK("copy_columns_kernel");
}

}  // namespace lmdr::cuda
