// RMSNorm (Llama/Qwen2): out = x * rsqrt(mean(x^2) + eps) * (w + w_offset), statistics in fp32
// (w_offset 1: Gemma's (1 + w)).
// Like Hugging Face, the normalised value is rounded to x's dtype before the weight multiply.
#include "column_reduce.cuh"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// one block per row; out[T,H], rstd[T], x[T,H], w[H]
__global__ void rmsnorm_forward_kernel(void* out, DType ot, void* rstd, DType rt, const void* x, DType xt,
                                       const void* w, DType wt, int64_t H, float eps, float w_offset) {
  int64_t row = blockIdx.x;
  const int64_t base = row * H;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float v = load_f(x, xt, base + j);
    ss += v * v;
  }
  ss = block_sum(ss);
  float r = rsqrtf(ss / float(H) + eps);
  if (threadIdx.x == 0) store_f(rstd, rt, row, r);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    store_f(out, ot, base + j, round_to(xt, load_f(x, xt, base + j) * r) * (load_f(w, wt, j) + w_offset));
}

// dx = r * g - r^3 * x * mean(g * x), g = dout * w
__global__ void rmsnorm_backward_kernel(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt,
                                        const void* w, DType wt, const void* rstd, DType rt, int64_t H,
                                        float w_offset) {
  int64_t row = blockIdx.x;
  const int64_t base = row * H;
  float r = load_f(rstd, rt, row);
  float gx = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    gx += load_f(dout, dt, base + j) * (load_f(w, wt, j) + w_offset) * load_f(x, xt, base + j);
  gx = block_sum(gx) / float(H);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float g = load_f(dout, dt, base + j) * (load_f(w, wt, j) + w_offset);
    store_f(dx, dxt, base + j, r * g - r * r * r * load_f(x, xt, base + j) * gx);
  }
}

struct RmsnormWeightGrad {  // dw[j] += sum_t dout[t,j] * x[t,j] * rstd[t]
  const void *dout, *x, *rstd;
  DType dt, xt, rt;
  int64_t H;
  __device__ float operator()(int64_t t, int64_t j) const {
    return load_f(dout, dt, t * H + j) * load_f(x, xt, t * H + j) * load_f(rstd, rt, t);
  }
};

static int row_threads(int64_t H) { return H >= 1024 ? 512 : H >= 256 ? 256 : 128; }

// ---- launchers ----

void rmsnorm_forward(void* out, DType ot, void* rstd, DType rt, const void* x, DType xt, const void* w, DType wt,
                     int64_t T, int64_t H, float eps, float w_offset, cudaStream_t stream) {
  if (T <= 0) return;
  rmsnorm_forward_kernel<<<unsigned(T), row_threads(H), 0, stream>>>(out, ot, rstd, rt, x, xt, w, wt, H, eps,
                                                                     w_offset);
  LMDR_LAUNCH_CHECK("rmsnorm_forward_kernel");
}

void rmsnorm_backward(void* dx, DType dxt, void* dw, DType dwt, const void* dout, DType dt, const void* x, DType xt,
                      const void* w, DType wt, const void* rstd, DType rt, int64_t T, int64_t H, float w_offset,
                      cudaStream_t stream) {
  if (T <= 0) return;
  rmsnorm_backward_kernel<<<unsigned(T), row_threads(H), 0, stream>>>(dx, dxt, dout, dt, x, xt, w, wt, rstd, rt, H,
                                                                      w_offset);
  LMDR_LAUNCH_CHECK("rmsnorm_backward_kernel");
  if (dw) column_reduce(dw, dwt, T, H, RmsnormWeightGrad{dout, x, rstd, dt, xt, rt, H}, stream, "rmsnorm_weight_grad");
}

}  // namespace lmdr::cuda
