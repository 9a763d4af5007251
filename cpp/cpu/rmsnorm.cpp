// RMSNorm (Llama/Qwen2, HF semantics): out = x * rsqrt(mean(x^2) + eps) * (w + w_offset);
// w_offset = 1 is Gemma's RMSNorm (modeling_gemma.py: output * (1.0 + weight)).
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

// out[R,H], rstd[R] <- x[R,H], w[H]
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t H, double eps,
                     double w_offset) {
  const T off = T(w_offset);
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * H;
      double ss = 0;
      for (int64_t i = 0; i < H; i++) ss += double(xr[i]) * xr[i];
      T rs = T(1.0 / std::sqrt(ss / double(H) + eps));
      rstd[r] = rs;
      T* o = out + r * H;
      for (int64_t i = 0; i < H; i++) o[i] = xr[i] * rs * (w[i] + off);
    }
  });
}

// With y_i = x_i r w_i, r = (mean(x^2) + eps)^-1/2 and g = dout:
//   dx_i = r w_i g_i - x_i r^3 / H * sum_j g_j w_j x_j ;  dw_i += sum_rows g_i x_i r
// dx[R,H] overwritten, dw[H] accumulated (null = frozen).
template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd,
                      int64_t rows, int64_t H, double w_offset) {
  const T off = T(w_offset);
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T *xr = x + r * H, *g = dout + r * H;
      double rs = rstd[r], dot = 0;
      for (int64_t i = 0; i < H; i++) dot += double(g[i]) * (w[i] + off) * xr[i];
      T c = T(dot * rs * rs * rs / double(H)), rsT = T(rs);
      T* d = dx + r * H;
      for (int64_t i = 0; i < H; i++) d[i] = rsT * (w[i] + off) * g[i] - xr[i] * c;
    }
  });
  if (!dw) return;
  // Threads own blocks of columns, so the sum over rows needs no locks.
  constexpr int64_t kBlock = 64;
  parallel_for((H + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    double acc[kBlock];
    for (int64_t blk = b0; blk < b1; blk++) {
      int64_t c0 = blk * kBlock, c1 = std::min(H, c0 + kBlock);
      std::fill(acc, acc + kBlock, 0.0);
      for (int64_t r = 0; r < rows; r++) {
        double rs = rstd[r];
        for (int64_t c = c0; c < c1; c++) acc[c - c0] += double(dout[r * H + c]) * x[r * H + c] * rs;
      }
      for (int64_t c = c0; c < c1; c++) dw[c] = T(dw[c] + acc[c - c0]);
    }
  });
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, double, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t, int64_t, double);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*, int64_t, int64_t, double);

}  // namespace lmdr::cpu
