// SwiGLU (silu(gate) * up) and erf GELU, forward and backward, fp32 math; and the generic
// activation / gated-activation pair for the rest (tanh GELU, ReLU: Phi, Gemma, T5).
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + __expf(-x)); }

// out[n] = silu(gate) * up
__global__ void swiglu_forward_kernel(void* out, DType ot, const void* gate, DType gt, const void* up, DType ut,
                                      int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float g = load_f(gate, gt, i);
    store_f(out, ot, i, g * sigmoidf(g) * load_f(up, ut, i));
  }
}

// dgate = dout * up * sig(g) * (1 + g * (1 - sig(g))), dup = dout * silu(g)
__global__ void swiglu_backward_kernel(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt,
                                       const void* gate, DType gt, const void* up, DType ut, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float g = load_f(gate, gt, i), u = load_f(up, ut, i), d = load_f(dout, dt, i);
    float s = sigmoidf(g);
    store_f(dgate, dgt, i, d * u * s * (1.f + g * (1.f - s)));
    store_f(dup, dut, i, d * g * s);
  }
}

// out = 0.5 x (1 + erf(x / sqrt 2))
__global__ void gelu_forward_kernel(void* out, DType ot, const void* x, DType xt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = load_f(x, xt, i);
    store_f(out, ot, i, 0.5f * v * (1.f + erff(v * 0.70710678118654752f)));
  }
}

// dx = dout * (Phi(x) + x * phi(x))
__global__ void gelu_backward_kernel(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt,
                                     int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = load_f(x, xt, i);
    float cdf = 0.5f * (1.f + erff(v * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
    store_f(dx, dxt, i, load_f(dout, dt, i) * (cdf + v * pdf));
  }
}

// value and derivative of act (0 silu, 1 erf gelu, 2 tanh gelu, 3 relu; see cpu/activations.cpp)
__device__ __forceinline__ float act_eval(float x, int act, float* deriv) {
  switch (act) {
    case 0: {
      float sg = sigmoidf(x);
      *deriv = sg * (1.f + x * (1.f - sg));
      return x * sg;
    }
    case 1: {
      float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
      *deriv = cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
      return x * cdf;
    }
    case 2: {
      const float c = 0.7978845608028654f, a = 0.044715f;
      float th = tanhf(c * (x + a * x * x * x));
      *deriv = 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * c * (1.f + 3.f * a * x * x);
      return 0.5f * x * (1.f + th);
    }
    default:
      *deriv = x > 0.f ? 1.f : 0.f;
      return x > 0.f ? x : 0.f;
  }
}

// out = act(x); with up: out = act(x) * up
__global__ void activation_forward_kernel(void* out, DType ot, const void* x, DType xt, const void* up, DType ut,
                                          int64_t n, int act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float d, v = act_eval(load_f(x, xt, i), act, &d);
    store_f(out, ot, i, up ? v * load_f(up, ut, i) : v);
  }
}

// dx = dout * act'(x) (* up); with dup: dup = dout * act(x)
__global__ void activation_backward_kernel(void* dx, DType dxt, void* dup, DType dut, const void* dout, DType dt,
                                           const void* x, DType xt, const void* up, DType ut, int64_t n, int act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float d, v = act_eval(load_f(x, xt, i), act, &d), g = load_f(dout, dt, i);
    if (dup) store_f(dup, dut, i, g * v);
    store_f(dx, dxt, i, up ? g * load_f(up, ut, i) * d : g * d);
  }
}

// ---- launchers ----

void swiglu_forward(void* out, DType ot, const void* gate, DType gt, const void* up, DType ut, int64_t n,
                    cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_forward_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, gate, gt, up, ut, n);
  LMDR_LAUNCH_CHECK("swiglu_forward_kernel");
}

void swiglu_backward(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt, const void* gate,
                     DType gt, const void* up, DType ut, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  swiglu_backward_kernel<<<grid_for(n), 256, 0, stream>>>(dgate, dgt, dup, dut, dout, dt, gate, gt, up, ut, n);
  LMDR_LAUNCH_CHECK("swiglu_backward_kernel");
}

void gelu_forward(void* out, DType ot, const void* x, DType xt, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  gelu_forward_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, x, xt, n);
  LMDR_LAUNCH_CHECK("gelu_forward_kernel");
}

void gelu_backward(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt, int64_t n,
                   cudaStream_t stream) {
  if (n <= 0) return;
  gelu_backward_kernel<<<grid_for(n), 256, 0, stream>>>(dx, dxt, dout, dt, x, xt, n);
  LMDR_LAUNCH_CHECK("gelu_backward_kernel");
}

}  // namespace lmdr::cuda

namespace lmdr::cuda {

void activation_forward(void* out, DType ot, const void* x, DType xt, int64_t n, int act, cudaStream_t stream) {
  if (n <= 0) return;
  activation_forward_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, x, xt, nullptr, xt, n, act);
  LMDR_LAUNCH_CHECK("activation_forward_kernel");
}

void activation_backward(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt, int64_t n, int act,
                         cudaStream_t stream) {
  if (n <= 0) return;
  activation_backward_kernel<<<grid_for(n), 256, 0, stream>>>(dx, dxt, nullptr, dxt, dout, dt, x, xt, nullptr, xt, n,
                                                              act);
  LMDR_LAUNCH_CHECK("activation_backward_kernel");
}

void gated_forward(void* out, DType ot, const void* gate, DType gt, const void* up, DType ut, int64_t n, int act,
                   cudaStream_t stream) {
  if (n <= 0) return;
  activation_forward_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, gate, gt, up, ut, n, act);
  LMDR_LAUNCH_CHECK("activation_forward_kernel");
}

void gated_backward(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt, const void* gate,
                    DType gt, const void* up, DType ut, int64_t n, int act, cudaStream_t stream) {
  if (n <= 0) return;
  activation_backward_kernel<<<grid_for(n), 256, 0, stream>>>(dgate, dgt, dup, dut, dout, dt, gate, gt, up, ut, n,
                                                              act);
  LMDR_LAUNCH_CHECK("activation_backward_kernel");
}

}  // namespace lmdr::cuda
