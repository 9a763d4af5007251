// Activations: SwiGLU (Llama MLP), erf-GELU (BERT), and LoRA dropout (cpu/dropout_hash.h).
#include <algorithm>
#include <cmath>

#include "cpu/dropout_hash.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {
constexpr int64_t kGrain = 1 << 14;
}

// out = silu(g) * u = g * sigmoid(g) * u, all [T,I]
template <typename T> void swiglu_forward(T* out, const T* gate, const T* up, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T g = gate[i];
      out[i] = g / (T(1) + std::exp(-g)) * up[i];
    }
  });
}

// dgate = dout * u * sig(g) * (1 + g (1 - sig(g))) ; dup = dout * g * sig(g)
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T g = gate[i], sig = T(1) / (T(1) + std::exp(-g)), d = dout[i];
      T dg = d * up[i] * sig * (T(1) + g * (T(1) - sig));
      dup[i] = d * g * sig;
      dgate[i] = dg;  // written last: dgate may alias dout
    }
  });
}

// GELU(x) = 0.5 x (1 + erf(x / sqrt 2))
template <typename T> void gelu_forward(T* out, const T* x, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) out[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
  });
}

// GELU'(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
template <typename T> void gelu_backward(T* dx, const T* dout, const T* x, int64_t n) {
  const T inv_sqrt_2pi = T(0.3989422804014327);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      T xi = x[i];
      T d = T(0.5) * (T(1) + std::erf(xi * T(M_SQRT1_2))) + xi * std::exp(T(-0.5) * xi * xi) * inv_sqrt_2pi;
      dx[i] = dout[i] * d;
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
  template void dropout_apply<T>(T*, const T*, int64_t, int64_t, double, uint64_t,           \
                                 const std::vector<uint64_t>&);
LMDR_INSTANTIATE(float)
LMDR_INSTANTIATE(double)
#undef LMDR_INSTANTIATE

}  // namespace lmdr::cpu
