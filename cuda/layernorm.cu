// LayerNorm (BERT): out = (x - mean) * rstd * w + b with the biased variance, fp32 statistics
// (two passes over the row: mean first, then the centred variance, for stability).
#include "column_reduce.cuh"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// one block per row; out[T,H], mean[T], rstd[T], x[T,H], w[H], b[H]
__global__ void layernorm_forward_kernel(void* out, DType ot, void* mean, DType mt, void* rstd, DType rt,
                                         const void* x, DType xt, const void* w, DType wt, const void* b, DType bt,
                                         int64_t H, float eps) {
  int64_t row = blockIdx.x;
  const int64_t base = row * H;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) s += load_f(x, xt, base + j);
  float m = block_sum(s) / float(H);
  float var = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float d = load_f(x, xt, base + j) - m;
    var += d * d;
  }
  var = block_sum(var) / float(H);
  float r = rsqrtf(var + eps);
  if (threadIdx.x == 0) {
    store_f(mean, mt, row, m);
    store_f(rstd, rt, row, r);
  }
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    store_f(out, ot, base + j, (load_f(x, xt, base + j) - m) * r * load_f(w, wt, j) + load_f(b, bt, j));
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w, xhat = (x - mean) * rstd
__global__ void layernorm_backward_kernel(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt,
                                          const void* w, DType wt, const void* mean, DType mt, const void* rstd,
                                          DType rt, int64_t H) {
  int64_t row = blockIdx.x;
  const int64_t base = row * H;
  float m = load_f(mean, mt, row), r = load_f(rstd, rt, row);
  float sg = 0.f, sgx = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float g = load_f(dout, dt, base + j) * load_f(w, wt, j);
    float xh = (load_f(x, xt, base + j) - m) * r;
    sg += g;
    sgx += g * xh;
  }
  sg = block_sum(sg) / float(H);
  sgx = block_sum(sgx) / float(H);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float g = load_f(dout, dt, base + j) * load_f(w, wt, j);
    float xh = (load_f(x, xt, base + j) - m) * r;
    store_f(dx, dxt, base + j, r * (g - sg - xh * sgx));
  }
}

struct LayernormWeightGrad {  // dw[j] += sum_t dout[t,j] * xhat[t,j]
  const void *dout, *x, *mean, *rstd;
  DType dt, xt, mt, rt;
  int64_t H;
  __device__ float operator()(int64_t t, int64_t j) const {
    return load_f(dout, dt, t * H + j) * (load_f(x, xt, t * H + j) - load_f(mean, mt, t)) * load_f(rstd, rt, t);
  }
};
struct LayernormBiasGrad {  // db[j] += sum_t dout[t,j]
  const void* dout;
  DType dt;
  int64_t H;
  __device__ float operator()(int64_t t, int64_t j) const { return load_f(dout, dt, t * H + j); }
};

static int row_threads(int64_t H) { return H >= 1024 ? 512 : H >= 256 ? 256 : 128; }

// ---- launchers ----

void layernorm_forward(void* out, DType ot, void* mean, DType mt, void* rstd, DType rt, const void* x, DType xt,
                       const void* w, DType wt, const void* b, DType bt, int64_t T, int64_t H, float eps,
                       cudaStream_t stream) {
  if (T <= 0) return;
  layernorm_forward_kernel<<<unsigned(T), row_threads(H), 0, stream>>>(out, ot, mean, mt, rstd, rt, x, xt, w, wt, b,
                                                                       bt, H, eps);
  LMDR_LAUNCH_CHECK("layernorm_forward_kernel");
}

void layernorm_backward(void* dx, DType dxt, void* dw, DType dwt, void* db, DType dbt, const void* dout, DType dt,
                        const void* x, DType xt, const void* w, DType wt, const void* mean, DType mt,
                        const void* rstd, DType rt, int64_t T, int64_t H, cudaStream_t stream) {
  if (T <= 0) return;
  layernorm_backward_kernel<<<unsigned(T), row_threads(H), 0, stream>>>(dx, dxt, dout, dt, x, xt, w, wt, mean, mt,
                                                                        rstd, rt, H);
  LMDR_LAUNCH_CHECK("layernorm_backward_kernel");
  if (dw) column_reduce(dw, dwt, T, H, LayernormWeightGrad{dout, x, mean, rstd, dt, xt, mt, rt, H}, stream,
                        "layernorm_weight_grad");
  if (db) column_reduce(db, dbt, T, H, LayernormBiasGrad{dout, dt, H}, stream, "layernorm_bias_grad");
}

}  // namespace lmdr::cuda
