// exp and erfc for float written on GCC vector types, so hot loops run them a whole register at
// a time (a scalar libm call, or a select the compiler may not if-convert under
// -ftrapping-math, keeps loops scalar). VB = vector bytes: 16 (SSE2), 32 (AVX2), 64 (AVX-512);
// exp_approx(float) / erfc_approx(float) are the one-lane versions of the same code.
// Double keeps libm: cpu-f64 is the accuracy reference.
//
// exp: Cody-Waite range reduction x = k ln2 + r, |r| <= ln2/2, a degree-7 Taylor polynomial for
// e^r (truncation < 5e-9 relative), 2^k built in the exponent bits: ~2 ulp. Inputs below -87.3
// give 0 (no subnormals, and exp(-inf) = 0); inputs above 88 saturate at e^88 ~ 1.7e38.
//
// erfc: the Chebyshev-fitted form erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0
// (Numerical Recipes' erfcc, fractional error < 1.2e-7); erfc(-z) = 2 - erfc(z). In float the
// exponent's rounding adds ~1e-6 relative for z < 4 and up to ~1e-5 beyond (erfc < 2e-8 there).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// The wide instantiations are only ever inlined into functions compiled for that ISA, so
// GCC's note that a 32/64-byte vector return changes the ABI does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lmdr::cpu {

template <int VB> struct FloatVec {
  typedef float V __attribute__((vector_size(VB)));
  typedef int32_t I __attribute__((vector_size(VB)));
};

template <int VB>
inline __attribute__((always_inline)) typename FloatVec<VB>::V exp_approx_v(const typename FloatVec<VB>::V& x) {
  using V = typename FloatVec<VB>::V;
  using I = typename FloatVec<VB>::I;
  const V lo = V{} - 87.3f, hi = V{} + 88.0f;
  const V xc = x < lo ? lo : (x > hi ? hi : x);
  const V kf = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  V r = xc - kf * 0.693145752f;  // ln2 split in two so k * ln2_hi is exact
  r = r - kf * 1.42860677e-06f;
  V p = V{} + 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const I bits = (__builtin_convertvector(kf, I) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof(V));
  return x < lo ? V{} : p * scale;
}

template <int VB>
inline __attribute__((always_inline)) typename FloatVec<VB>::V erfc_approx_v(const typename FloatVec<VB>::V& x) {
  using V = typename FloatVec<VB>::V;
  const V z = x < 0 ? -x : x;
  const V t = 1.0f / (1.0f + 0.5f * z);
  V p = V{} + 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const V r = t * exp_approx_v<VB>(-z * z + p);
  return x >= 0 ? r : 2.0f - r;
}

// Unaligned vector load/store.
template <typename V, typename T> inline __attribute__((always_inline)) V load_vec(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V, typename T> inline __attribute__((always_inline)) void store_vec(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

inline float exp_approx(float x) { return exp_approx_v<4>(typename FloatVec<4>::V{x})[0]; }
inline double exp_approx(double x) { return std::exp(x); }
inline float erfc_approx(float x) { return erfc_approx_v<4>(typename FloatVec<4>::V{x})[0]; }
inline double erfc_approx(double x) { return std::erfc(x); }

}  // namespace lmdr::cpu

#pragma GCC diagnostic pop
