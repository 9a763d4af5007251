// Sequence pooling (EOS = last token, CLS = first token, mean) and row L2 normalisation.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

// out[B,H] <- h[T,H]; an empty sequence pools to zeros.
template <typename T>
void pool_forward(T* out, const T* h, const std::vector<int32_t>& cu_seqlens, int64_t H,
                  Pooling mode) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  parallel_for(B, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t b0, int64_t b1) {
    std::vector<double> acc(H);
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = cu_seqlens[b], L = cu_seqlens[b + 1] - s;
      T* o = out + b * H;
      if (L <= 0) {
        std::fill(o, o + H, T(0));
      } else if (mode == Pooling::Mean) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = s; t < s + L; t++)
          for (int64_t i = 0; i < H; i++) acc[i] += h[t * H + i];
        for (int64_t i = 0; i < H; i++) o[i] = T(acc[i] / double(L));
      } else {
        const int64_t row = mode == Pooling::Eos ? s + L - 1 : s;
        std::memcpy(o, h + row * H, sizeof(T) * H);
      }
    }
  });
}

// dh[T,H] overwritten: the pooled rows get dout (mean: dout / L), every other row zero.
template <typename T>
void pool_backward(T* dh, const T* dout, const std::vector<int32_t>& cu_seqlens, int64_t H,
                   Pooling mode) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = cu_seqlens[b], L = cu_seqlens[b + 1] - s;
      const T* g = dout + b * H;
      for (int64_t t = s; t < s + L; t++) {
        T* d = dh + t * H;
        bool pooled = mode == Pooling::Mean || (mode == Pooling::Eos ? t == s + L - 1 : t == s);
        if (!pooled) std::fill(d, d + H, T(0));
        else if (mode == Pooling::Mean)
          for (int64_t i = 0; i < H; i++) d[i] = T(g[i] / double(L));
        else
          std::memcpy(d, g, sizeof(T) * H);
      }
    }
  });
}

// y[R,H] = x / max(||x||_2, 1e-12)  (torch.nn.functional.normalize); y may alias x.
template <typename T> void l2normalize_forward(T* y, const T* x, int64_t rows, int64_t H) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      double ss = 0;
      for (int64_t i = 0; i < H; i++) ss += double(x[r * H + i]) * x[r * H + i];
      double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int64_t i = 0; i < H; i++) y[r * H + i] = T(x[r * H + i] * inv);
    }
  });
}

template void pool_forward<float>(float*, const float*, const std::vector<int32_t>&, int64_t, Pooling);
template void pool_forward<double>(double*, const double*, const std::vector<int32_t>&, int64_t, Pooling);
template void pool_backward<float>(float*, const float*, const std::vector<int32_t>&, int64_t, Pooling);
template void pool_backward<double>(double*, const double*, const std::vector<int32_t>&, int64_t, Pooling);
template void l2normalize_forward<float>(float*, const float*, int64_t, int64_t);
template void l2normalize_forward<double>(double*, const double*, int64_t, int64_t);

}  // namespace lmdr::cpu
