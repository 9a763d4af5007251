// Elementwise and bias ops. Flat loops split across the pool in large chunks; each loop body
// is simple enough for the compiler to vectorise.
#include <algorithm>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

constexpr int64_t kFlatGrain = 1 << 15;  // elements per chunk below which threading costs more

template <typename T> void fill(T* x, int64_t n, T value) {
  parallel_for(n, kFlatGrain, [&](int64_t b, int64_t e) { std::fill(x + b, x + e, value); });
}

template <typename T> void add(T* out, const T* a, const T* b, int64_t n) {
  parallel_for(n, kFlatGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) out[i] = a[i] + b[i];
  });
}

template <typename T> void scale(T* x, int64_t n, T s) {
  parallel_for(n, kFlatGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) x[i] *= s;
  });
}

template <typename T> void axpy(T* y, T a, const T* x, int64_t n) {
  parallel_for(n, kFlatGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) y[i] += a * x[i];
  });
}

// y[R,C] += bias[C]
template <typename T> void add_bias(T* y, const T* bias, int64_t rows, int64_t cols) {
  parallel_for(rows, std::max<int64_t>(1, kFlatGrain / std::max<int64_t>(cols, 1)),
               [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      T* row = y + r * cols;
      for (int64_t c = 0; c < cols; c++) row[c] += bias[c];
    }
  });
}

// dbias[C] += sum_r dy[R,C]: threads own column blocks (no races), sums in double.
template <typename T> void bias_backward(T* dbias, const T* dy, int64_t rows, int64_t cols) {
  constexpr int64_t kBlock = 64;
  int64_t blocks = (cols + kBlock - 1) / kBlock;
  parallel_for(blocks, std::max<int64_t>(1, kFlatGrain / std::max<int64_t>(rows * kBlock, 1)),
               [&](int64_t b0, int64_t b1) {
    double acc[kBlock];
    for (int64_t blk = b0; blk < b1; blk++) {
      int64_t c0 = blk * kBlock, c1 = std::min(cols, c0 + kBlock);
      std::fill(acc, acc + kBlock, 0.0);
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = c0; c < c1; c++) acc[c - c0] += dy[r * cols + c];
      for (int64_t c = c0; c < c1; c++) dbias[c] = T(dbias[c] + acc[c - c0]);
    }
  });
}

// dst[R, dst_col..+ncols] = src[R, src_col..+ncols]: splitting fused projections (Phi-3's
// qkv_proj) into their parts and assembling their gradients.
template <typename T>
void copy_columns(T* dst, int64_t ldd, int64_t dst_col, const T* src, int64_t lds, int64_t src_col,
                  int64_t rows, int64_t ncols) {
  parallel_for(rows, std::max<int64_t>(1, kFlatGrain / std::max<int64_t>(ncols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) std::copy_n(src + r * lds + src_col, ncols, dst + r * ldd + dst_col);
  });
}

#define LMDR_INSTANTIATE(T)                                              \
  template void copy_columns<T>(T*, int64_t, int64_t, const T*, int64_t, int64_t, int64_t, int64_t); \
  template void fill<T>(T*, int64_t, T);                                 \
  template void add<T>(T*, const T*, const T*, int64_t);                 \
  template void scale<T>(T*, int64_t, T);                                \
  template void axpy<T>(T*, T, const T*, int64_t);                       \
  template void add_bias<T>(T*, const T*, int64_t, int64_t);             \
  template void bias_backward<T>(T*, const T*, int64_t, int64_t);
LMDR_INSTANTIATE(float)
LMDR_INSTANTIATE(double)
#undef LMDR_INSTANTIATE

}  // namespace lmdr::cpu
