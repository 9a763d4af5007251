// Token embedding lookup and its scatter-add gradient.
#include <algorithm>
#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

// out[T,H] (= or +=) table[V,H][ids[t]]
template <typename T>
void embedding_forward(T* out, const T* table, const std::vector<int32_t>& ids, int64_t H,
                       bool accumulate) {
  parallel_for(int64_t(ids.size()), std::max<int64_t>(1, 8192 / std::max<int64_t>(H, 1)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const T* row = table + int64_t(ids[t]) * H;
      T* o = out + t * H;
      if (accumulate)
        for (int64_t i = 0; i < H; i++) o[i] += row[i];
      else
        std::memcpy(o, row, sizeof(T) * H);
    }
  });
}

// dtable[ids[t]] += dout[t]. Repeated ids hit the same row, so threads own column blocks
// (every thread walks all tokens, in order: deterministic and race-free).
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::vector<int32_t>& ids, int64_t H) {
  constexpr int64_t kBlock = 64;
  parallel_for((H + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    int64_t c0 = b0 * kBlock, c1 = std::min(H, b1 * kBlock);
    for (size_t t = 0; t < ids.size(); t++) {
      T* row = dtable + int64_t(ids[t]) * H;
      const T* g = dout + int64_t(t) * H;
      for (int64_t c = c0; c < c1; c++) row[c] += g[c];
    }
  });
}

template void embedding_forward<float>(float*, const float*, const std::vector<int32_t>&, int64_t, bool);
template void embedding_forward<double>(double*, const double*, const std::vector<int32_t>&, int64_t, bool);
template void embedding_backward<float>(float*, const float*, const std::vector<int32_t>&, int64_t);
template void embedding_backward<double>(double*, const double*, const std::vector<int32_t>&, int64_t);

}  // namespace lmdr::cpu
