// LayerNorm (BERT, torch semantics: biased variance): out = (x - mean) * rstd * w + b.
#include <algorithm>
#include <cmath>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

// out[R,H], mean[R], rstd[R] <- x[R,H], w[H], b[H]
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t rows,
                       int64_t H, double eps) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T* xr = x + r * H;
      double s = 0;
      for (int64_t i = 0; i < H; i++) s += xr[i];
      double mu = s / double(H), var = 0;
      for (int64_t i = 0; i < H; i++) var += (xr[i] - mu) * (xr[i] - mu);  // two-pass: no cancellation
      double rs = 1.0 / std::sqrt(var / double(H) + eps);
      mean[r] = T(mu);
      rstd[r] = T(rs);
      T* o = out + r * H;
      for (int64_t i = 0; i < H; i++) o[i] = T((xr[i] - mu) * rs) * w[i] + b[i];
    }
  });
}

// With xhat = (x - mean) rstd and gh = dout * w:
//   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)) ; dw += sum dout*xhat ; db += sum dout
template <typename T>
void layernorm_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, const T* mean,
                        const T* rstd, int64_t rows, int64_t H) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const T *xr = x + r * H, *g = dout + r * H;
      double mu = mean[r], rs = rstd[r], sum_gh = 0, sum_ghx = 0;
      for (int64_t i = 0; i < H; i++) {
        double gh = double(g[i]) * w[i];
        sum_gh += gh;
        sum_ghx += gh * (xr[i] - mu) * rs;
      }
      double a = sum_gh / double(H), c = sum_ghx / double(H);
      T* d = dx + r * H;
      for (int64_t i = 0; i < H; i++) {
        double xhat = (xr[i] - mu) * rs;
        d[i] = T(rs * (double(g[i]) * w[i] - a - xhat * c));
      }
    }
  });
  if (!dw && !db) return;
  constexpr int64_t kBlock = 64;
  parallel_for((H + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    double aw[kBlock], ab[kBlock];
    for (int64_t blk = b0; blk < b1; blk++) {
      int64_t c0 = blk * kBlock, c1 = std::min(H, c0 + kBlock);
      std::fill(aw, aw + kBlock, 0.0);
      std::fill(ab, ab + kBlock, 0.0);
      for (int64_t r = 0; r < rows; r++) {
        double mu = mean[r], rs = rstd[r];
        for (int64_t c = c0; c < c1; c++) {
          double g = dout[r * H + c];
          aw[c - c0] += g * (x[r * H + c] - mu) * rs;
          ab[c - c0] += g;
        }
      }
      for (int64_t c = c0; c < c1; c++) {
        if (dw) dw[c] = T(dw[c] + aw[c - c0]);
        if (db) db[c] = T(db[c] + ab[c - c0]);
      }
    }
  });
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t, double);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*, int64_t, int64_t, double);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*, const float*, int64_t, int64_t);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*, const double*, const double*, int64_t, int64_t);

}  // namespace lmdr::cpu
