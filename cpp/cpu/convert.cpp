// Host dtype conversion for upload/download. BF16 is the top half of an IEEE float32 (exact
// shift); F16 is decoded field by field (sign, 5-bit exponent, 10-bit mantissa), subnormals,
// infinities and NaN included, so every half value maps to its exact float.
#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline float f16_to_float(uint16_t h) {
  int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0) magnitude = std::ldexp(float(mantissa), -24);  // subnormal: m * 2^-24
  else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
  else magnitude = std::ldexp(float(1024 + mantissa), exponent - 25);  // (1 + m/1024) 2^(e-15)
  return sign ? -magnitude : magnitude;
}

constexpr int64_t kGrain = 1 << 15;

}  // namespace

template <typename T> void convert_from(T* dst, const void* src, DType src_dtype, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    switch (src_dtype) {
      case DType::F32: { auto s = static_cast<const float*>(src); for (int64_t i = b; i < e; i++) dst[i] = T(s[i]); break; }
      case DType::F64: { auto s = static_cast<const double*>(src); for (int64_t i = b; i < e; i++) dst[i] = T(s[i]); break; }
      case DType::BF16: { auto s = static_cast<const uint16_t*>(src); for (int64_t i = b; i < e; i++) dst[i] = T(bf16_to_float(s[i])); break; }
      case DType::F16: { auto s = static_cast<const uint16_t*>(src); for (int64_t i = b; i < e; i++) dst[i] = T(f16_to_float(s[i])); break; }
      case DType::I32: { auto s = static_cast<const int32_t*>(src); for (int64_t i = b; i < e; i++) dst[i] = T(s[i]); break; }
      default: throw Error(std::string("upload: cannot convert from ") + dtype_name(src_dtype));
    }
  });
}

template <typename T> void convert_to(void* dst, DType dst_dtype, const T* src, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    switch (dst_dtype) {
      case DType::F32: { auto d = static_cast<float*>(dst); for (int64_t i = b; i < e; i++) d[i] = float(src[i]); break; }
      case DType::F64: { auto d = static_cast<double*>(dst); for (int64_t i = b; i < e; i++) d[i] = double(src[i]); break; }
      default: throw Error(std::string("download: cannot convert to ") + dtype_name(dst_dtype));
    }
  });
}

template void convert_from<float>(float*, const void*, DType, int64_t);
template void convert_from<double>(double*, const void*, DType, int64_t);
template void convert_to<float>(void*, DType, const float*, int64_t);
template void convert_to<double>(void*, DType, const double*, int64_t);

}  // namespace lmdr::cpu
