// exp() that compilers can vectorise (no libm call): Cody-Waite range reduction
// x = k ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial for e^r (truncation error
// < 5e-9 relative) and 2^k built in the exponent bits. About 2 ulp in float. Inputs below
// -87.3 return 0 (instead of subnormals); inputs above 88.7 are not expected (softmax
// arguments are <= 0). Double keeps std::exp: cpu-f64 is the accuracy reference.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace lmdr::cpu {

inline float exp_approx(float x) {
  const float xc = x < -87.3f ? -87.3f : x;
  const float kf = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  float r = xc - kf * 0.693145752f;  // ln2 split in two so k*ln2_hi is exact
  r = r - kf * 1.42860677e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (int32_t(kf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x < -87.3f ? 0.0f : p * scale;
}

inline double exp_approx(double x) { return std::exp(x); }

}  // namespace lmdr::cpu
