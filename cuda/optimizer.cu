// Optimisers (param_dtype F32 in training; any float dtype works): AdamW with PyTorch's semantics, SGD, and the sum
// of squares behind gradient-norm clipping (accumulated in double).
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= step_size * m / (sqrt(v) / sqrt_bc2 + eps), with g = grad * grad_scale and
// step_size = lr / (1 - b1^t), sqrt_bc2 = sqrt(1 - b2^t) (torch.optim.AdamW, non-fused).
__global__ void adamw_kernel(void* p, DType pt, const void* grad, DType gt, void* m, DType mt, void* v, DType vt,
                             int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                             float step_size, float sqrt_bc2, float grad_scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float g = load_f(grad, gt, i) * grad_scale;
    float w = load_f(p, pt, i) * (1.f - lr * weight_decay);
    float mi = beta1 * load_f(m, mt, i) + (1.f - beta1) * g;
    float vi = beta2 * load_f(v, vt, i) + (1.f - beta2) * g * g;
    store_f(m, mt, i, mi);
    store_f(v, vt, i, vi);
    store_f(p, pt, i, w - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps));
  }
}

// p -= lr * (grad * grad_scale + weight_decay * p)
__global__ void sgd_kernel(void* p, DType pt, const void* grad, DType gt, int64_t n, float lr, float weight_decay,
                           float grad_scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float w = load_f(p, pt, i);
    store_f(p, pt, i, w - lr * (load_f(grad, gt, i) * grad_scale + weight_decay * w));
  }
}

// *out += sum x^2 (out: one double on the device)
__global__ void sum_squares_kernel(double* out, const void* x, DType xt, int64_t n) {
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = load_f(x, xt, i);
    s += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(out, s);
}

// ---- launchers ----

void adamw_step(void* param, DType pt, const void* grad, DType gt, void* m, DType mt, void* v, DType vt, int64_t n,
                double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step, double grad_scale,
                cudaStream_t stream) {
  if (n <= 0) return;
  double bc1 = 1.0 - std::pow(beta1, double(step));
  double bc2 = 1.0 - std::pow(beta2, double(step));
  adamw_kernel<<<grid_for(n), 256, 0, stream>>>(param, pt, grad, gt, m, mt, v, vt, n, float(lr), float(beta1),
                                                float(beta2), float(eps), float(weight_decay), float(lr / bc1),
                                                float(std::sqrt(bc2)), float(grad_scale));
  LMDR_LAUNCH_CHECK("adamw_kernel");
}

void sgd_step(void* param, DType pt, const void* grad, DType gt, int64_t n, double lr, double weight_decay,
              double grad_scale, cudaStream_t stream) {
  if (n <= 0) return;
  sgd_kernel<<<grid_for(n), 256, 0, stream>>>(param, pt, grad, gt, n, float(lr), float(weight_decay),
                                              float(grad_scale));
  LMDR_LAUNCH_CHECK("sgd_kernel");
}

void sum_squares(double* out, const void* x, DType xt, int64_t n, cudaStream_t stream) {
  LMDR_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream));
  if (n <= 0) return;
  sum_squares_kernel<<<std::min<unsigned>(grid_for(n), 1024), 256, 0, stream>>>(out, x, xt, n);
  LMDR_LAUNCH_CHECK("sum_squares_kernel");
}

}  // namespace lmdr::cuda
