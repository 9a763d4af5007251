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

// bf16 gated activation, 8 elements per 16-byte load (encode's SwiGLU over [tokens, intermediate]
// is memory-bound: the generic kernel's 2-byte accesses ran at about a quarter of bandwidth, H200
// run 2 profile). ACT is a template argument so act_eval's switch folds away. The tail (n % 8)
// goes element by element.
template <int ACT>
__global__ void gated_forward_bf16x8_kernel(__nv_bfloat16* out, const __nv_bfloat16* gate, const __nv_bfloat16* up,
                                            int64_t n) {
  const int64_t n8 = n / 8, stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t v = first; v < n8; v += stride) {
    Bf16x8 g, u, o;
    g.v = reinterpret_cast<const uint4*>(gate)[v];
    u.v = reinterpret_cast<const uint4*>(up)[v];
    for (int j = 0; j < 8; j++) {
      float d, a = act_eval(__bfloat162float(g.h[j]), ACT, &d);
      o.h[j] = __float2bfloat16(a * __bfloat162float(u.h[j]));
    }
    reinterpret_cast<uint4*>(out)[v] = o.v;
  }
  for (int64_t i = n8 * 8 + first; i < n; i += stride) {
    float d, a = act_eval(__bfloat162float(gate[i]), ACT, &d);
    out[i] = __float2bfloat16(a * __bfloat162float(up[i]));
  }
}

// dgate = dout * up * act'(gate), dup = dout * act(gate); bf16, 8 elements per load
template <int ACT>
__global__ void gated_backward_bf16x8_kernel(__nv_bfloat16* dgate, __nv_bfloat16* dup, const __nv_bfloat16* dout,
                                             const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n) {
  const int64_t n8 = n / 8, stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t v = first; v < n8; v += stride) {
    Bf16x8 g, u, dy, dg, du;
    g.v = reinterpret_cast<const uint4*>(gate)[v];
    u.v = reinterpret_cast<const uint4*>(up)[v];
    dy.v = reinterpret_cast<const uint4*>(dout)[v];
    for (int j = 0; j < 8; j++) {
      float d, a = act_eval(__bfloat162float(g.h[j]), ACT, &d), y = __bfloat162float(dy.h[j]);
      du.h[j] = __float2bfloat16(y * a);
      dg.h[j] = __float2bfloat16(y * __bfloat162float(u.h[j]) * d);
    }
    reinterpret_cast<uint4*>(dgate)[v] = dg.v;
    reinterpret_cast<uint4*>(dup)[v] = du.v;
  }
  for (int64_t i = n8 * 8 + first; i < n; i += stride) {
    float d, a = act_eval(__bfloat162float(gate[i]), ACT, &d), y = __bfloat162float(dout[i]);
    dup[i] = __float2bfloat16(y * a);
    dgate[i] = __float2bfloat16(y * __bfloat162float(up[i]) * d);
  }
}

namespace {

// Runs kernel<ACT> for the runtime act (0 silu, 1 erf gelu, 2 tanh gelu, 3 relu).
template <template <int> class K, typename... Args>
void launch_by_act(int act, int64_t n, cudaStream_t stream, Args... args) {
  const unsigned grid = grid_for((n + 7) / 8);
  switch (act) {
    case 0: K<0>::launch(grid, stream, args...); break;
    case 1: K<1>::launch(grid, stream, args...); break;
    case 2: K<2>::launch(grid, stream, args...); break;
    default: K<3>::launch(grid, stream, args...); break;
  }
}
template <int ACT>
struct GatedForwardBf16 {
  static void launch(unsigned grid, cudaStream_t stream, __nv_bfloat16* out, const __nv_bfloat16* gate,
                     const __nv_bfloat16* up, int64_t n) {
    gated_forward_bf16x8_kernel<ACT><<<grid, 256, 0, stream>>>(out, gate, up, n);
  }
};
template <int ACT>
struct GatedBackwardBf16 {
  static void launch(unsigned grid, cudaStream_t stream, __nv_bfloat16* dgate, __nv_bfloat16* dup,
                     const __nv_bfloat16* dout, const __nv_bfloat16* gate, const __nv_bfloat16* up, int64_t n) {
    gated_backward_bf16x8_kernel<ACT><<<grid, 256, 0, stream>>>(dgate, dup, dout, gate, up, n);
  }
};
}  // namespace

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
  if (ot == DType::BF16 && gt == DType::BF16 && ut == DType::BF16 && aligned16(out) && aligned16(gate) &&
      aligned16(up)) {
    launch_by_act<GatedForwardBf16>(act, n, stream, static_cast<__nv_bfloat16*>(out),
                                    static_cast<const __nv_bfloat16*>(gate), static_cast<const __nv_bfloat16*>(up), n);
    LMDR_LAUNCH_CHECK("gated_forward_bf16x8_kernel");
    return;
  }
  activation_forward_kernel<<<grid_for(n), 256, 0, stream>>>(out, ot, gate, gt, up, ut, n, act);
  LMDR_LAUNCH_CHECK("activation_forward_kernel");
}

void gated_backward(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt, const void* gate,
                    DType gt, const void* up, DType ut, int64_t n, int act, cudaStream_t stream) {
  if (n <= 0) return;
  if (dgt == DType::BF16 && dut == DType::BF16 && dt == DType::BF16 && gt == DType::BF16 && ut == DType::BF16 &&
      aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up)) {
    launch_by_act<GatedBackwardBf16>(act, n, stream, static_cast<__nv_bfloat16*>(dgate),
                                     static_cast<__nv_bfloat16*>(dup), static_cast<const __nv_bfloat16*>(dout),
                                     static_cast<const __nv_bfloat16*>(gate), static_cast<const __nv_bfloat16*>(up),
                                     n);
    LMDR_LAUNCH_CHECK("gated_backward_bf16x8_kernel");
    return;
  }
  activation_backward_kernel<<<grid_for(n), 256, 0, stream>>>(dgate, dgt, dup, dut, dout, dt, gate, gt, up, ut, n,
                                                              act);
  LMDR_LAUNCH_CHECK("activation_backward_kernel");
}

}  // namespace lmdr::cuda
