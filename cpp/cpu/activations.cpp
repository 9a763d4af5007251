// Activations: SwiGLU (Llama MLP), erf-GELU (BERT), the rest of Activation (tanh GELU, ReLU,
// gated forms: Phi, Gemma, T5), and LoRA dropout (cpu/dropout_hash.h).
// exp/erfc come from cpu/approx_math.h so the float loops vectorise.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/approx_math.h"
#include "cpu/dropout_hash.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {
constexpr int64_t kGrain = 1 << 14;
}

// Float loops run on 16-byte vectors (the baseline every x86-64 has) with exp/erfc from
// cpu/approx_math.h, then a scalar tail; double loops are scalar libm.
using V4 = FloatVec<16>::V;
template <typename T> constexpr int64_t vec_lanes() { return std::is_same<T, float>::value ? 4 : 0; }

// out = silu(g) * u = g * sigmoid(g) * u, all [T,I]
template <typename T> void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    int64_t i = b;
    if constexpr (vec_lanes<T>() > 0)
      for (; i + 4 <= e; i += 4) {
        const V4 g = load_vec<V4>(gate + i);
        store_vec(out + i, g / (1.0f + exp_approx_v<16>(-g)) * load_vec<V4>(up + i));
      }
    for (; i < e; i++) {
      T g = gate[i];
      out[i] = g / (T(1) + exp_approx(T(-g))) * up[i];
    }
  });
}

// dgate = dout * u * sig(g) * (1 + g (1 - sig(g))) ; dup = dout * g * sig(g)
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    int64_t i = b;
    if constexpr (vec_lanes<T>() > 0)
      for (; i + 4 <= e; i += 4) {
        const V4 g = load_vec<V4>(gate + i), d = load_vec<V4>(dout + i);
        const V4 sig = 1.0f / (1.0f + exp_approx_v<16>(-g));
        const V4 dg = d * load_vec<V4>(up + i) * sig * (1.0f + g * (1.0f - sig));
        store_vec(dup + i, d * g * sig);
        store_vec(dgate + i, dg);  // written last: dgate may alias dout
      }
    for (; i < e; i++) {
      T g = gate[i], sig = T(1) / (T(1) + exp_approx(T(-g))), d = dout[i];
      T dg = d * up[i] * sig * (T(1) + g * (T(1) - sig));
      dup[i] = d * g * sig;
      dgate[i] = dg;
    }
  });
}

// GELU(x) = 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): the erfc form keeps full
// relative accuracy for negative x, where 1 + erf cancels.
template <typename T> void gelu_forward(T* out, const T* x, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    int64_t i = b;
    if constexpr (vec_lanes<T>() > 0)
      for (; i + 4 <= e; i += 4) {
        const V4 xi = load_vec<V4>(x + i);
        store_vec(out + i, 0.5f * xi * erfc_approx_v<16>(xi * float(-M_SQRT1_2)));
      }
    for (; i < e; i++) out[i] = T(0.5) * x[i] * erfc_approx(T(-x[i] * T(M_SQRT1_2)));
  });
}

// GELU'(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
template <typename T> void gelu_backward(T* dx, const T* dout, const T* x, int64_t n) {
  const T inv_sqrt_2pi = T(0.3989422804014327);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    int64_t i = b;
    if constexpr (vec_lanes<T>() > 0)
      for (; i + 4 <= e; i += 4) {
        const V4 xi = load_vec<V4>(x + i);
        const V4 d = 0.5f * erfc_approx_v<16>(xi * float(-M_SQRT1_2)) +
                     xi * exp_approx_v<16>(-0.5f * xi * xi) * float(inv_sqrt_2pi);
        store_vec(dx + i, load_vec<V4>(dout + i) * d);
      }
    for (; i < e; i++) {
      T xi = x[i];
      T d = T(0.5) * erfc_approx(T(-xi * T(M_SQRT1_2))) + xi * exp_approx(T(T(-0.5) * xi * xi)) * inv_sqrt_2pi;
      dx[i] = dout[i] * d;
    }
  });
}

// The other activations, scalar (only Phi, Gemma and T5 use them): value and derivative.
//   GeluTanh(x) = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)   (HF gelu_new /
//   gelu_pytorch_tanh);  d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 0.044715 x^2)
template <typename T> static inline void act_eval(T x, Activation act, T& value, T& deriv) {
  switch (act) {
    case Activation::Silu: {
      const T sig = T(1) / (T(1) + std::exp(-x));
      value = x * sig;
      deriv = sig * (T(1) + x * (T(1) - sig));
      return;
    }
    case Activation::Gelu: {
      value = T(0.5) * x * std::erfc(-x * T(M_SQRT1_2));
      deriv = T(0.5) * std::erfc(-x * T(M_SQRT1_2)) + x * std::exp(T(-0.5) * x * x) * T(0.3989422804014327);
      return;
    }
    case Activation::GeluTanh: {
      const T c = T(0.7978845608028654), a = T(0.044715);
      const T th = std::tanh(c * (x + a * x * x * x));
      value = T(0.5) * x * (T(1) + th);
      deriv = T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * c * (T(1) + T(3) * a * x * x);
      return;
    }
    case Activation::Relu:
      value = x > T(0) ? x : T(0);
      deriv = x > T(0) ? T(1) : T(0);
      return;
  }
}

template <typename T> void activation_forward(T* out, const T* x, int64_t n, Activation act) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T v, d;
      act_eval(x[i], act, v, d);
      out[i] = v;
    }
  });
}

template <typename T> void activation_backward(T* dx, const T* dout, const T* x, int64_t n, Activation act) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T v, d;
      act_eval(x[i], act, v, d);
      dx[i] = dout[i] * d;
    }
  });
}

// out = act(gate) * up ; dgate = dout * up * act'(gate), dup = dout * act(gate)
template <typename T> void gated_forward(T* out, const T* gate, const T* up, int64_t n, Activation act) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T v, d;
      act_eval(gate[i], act, v, d);
      out[i] = v * up[i];
    }
  });
}

template <typename T>
void gated_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n, Activation act) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T v, d;
      act_eval(gate[i], act, v, d);
      const T g = dout[i];
      dup[i] = g * v;
      dgate[i] = g * up[i] * d;  // written last: dgate may alias dout
    }
  });
}

// out[R,C] = x * mask / (1 - p), mask from (seed, row_keys[r], c). p >= 1 drops everything.
template <typename T>
void dropout_apply(T* out, const T* x, int64_t rows, int64_t cols, double p, uint64_t seed,
                   const std::vector<uint64_t>& row_keys) {
  const T keep_scale = p >= 1 ? T(0) : T(1.0 / (1.0 - p));
  const float pf = float(p);
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const uint64_t rh = dropout_row_hash(seed, row_keys[r]);
      const T* xr = x + r * cols;
      T* o = out + r * cols;
      for (int64_t c = 0; c < cols; c++)
        o[c] = (p > 0 && dropout_uniform(rh, uint64_t(c)) < pf) ? T(0) : xr[c] * keep_scale;
    }
  });
}

#define LMDR_INSTANTIATE(T)                                                                  \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                          \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);           \
  template void gelu_forward<T>(T*, const T*, int64_t);                                      \
  template void gelu_backward<T>(T*, const T*, const T*, int64_t);                           \
  template void activation_forward<T>(T*, const T*, int64_t, Activation);                  \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, Activation);       \
  template void gated_forward<T>(T*, const T*, const T*, int64_t, Activation);             \
  template void gated_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, Activation); \
  template void dropout_apply<T>(T*, const T*, int64_t, int64_t, double, uint64_t,           \
                                 const std::vector<uint64_t>&);
LMDR_INSTANTIATE(float)
LMDR_INSTANTIATE(double)
#undef LMDR_INSTANTIATE

}  // namespace lmdr::cpu
