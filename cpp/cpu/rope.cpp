// Rotary position embedding, rotate-half convention (HF Llama/Qwen2), in place on x[T,heads,D].
// With half = inv_freq.size() (D/2, or less for partial rotary: Phi rotates the first
// 2*half dims of each head and passes the rest through, modeling_phi.py) and a_i = float32(float32(pos) * float32(inv_freq[i])) (HF multiplies in
// float32), for i < half:
//   out[i] = x[i] cos a_i - x[i+half] sin a_i ;  out[i+half] = x[i+half] cos a_i + x[i] sin a_i
// The backward applies the transpose, i.e. the rotation by -a_i.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

template <typename T>
void rope_apply(T* x, int64_t heads, int64_t D, const std::vector<double>& inv_freq,
                const std::vector<int32_t>& cu_seqlens, bool inverse) {
  const int64_t half = int64_t(inv_freq.size());  // < D/2: partial rotary, dims >= 2*half pass through
  int64_t max_len = 0;
  for (size_t b = 0; b + 1 < cu_seqlens.size(); b++)
    max_len = std::max<int64_t>(max_len, cu_seqlens[b + 1] - cu_seqlens[b]);
  // cos/sin table [max_len, half], rounded to T like HF's cos().to(dtype)
  std::vector<T> cos_t(max_len * half), sin_t(max_len * half);
  parallel_for(max_len, std::max<int64_t>(1, 2048 / std::max<int64_t>(half, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t pos = p0; pos < p1; pos++)
      for (int64_t i = 0; i < half; i++) {
        float angle = float(pos) * float(inv_freq[i]);
        cos_t[pos * half + i] = T(std::cos(double(angle)));
        sin_t[pos * half + i] = T(inverse ? -std::sin(double(angle)) : std::sin(double(angle)));
      }
  });
  const int64_t total = cu_seqlens.empty() ? 0 : cu_seqlens.back();
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  parallel_for(total, std::max<int64_t>(1, 4096 / std::max<int64_t>(heads * D, 1)), [&](int64_t t0, int64_t t1) {
    // the sequence containing t0, then walk forward
    int64_t b = std::upper_bound(cu_seqlens.begin(), cu_seqlens.end(), int32_t(t0)) - cu_seqlens.begin() - 1;
    for (int64_t t = t0; t < t1; t++) {
      while (b + 1 < B && t >= cu_seqlens[b + 1]) b++;
      int64_t pos = t - cu_seqlens[b];
      const T *c = cos_t.data() + pos * half, *s = sin_t.data() + pos * half;
      for (int64_t h = 0; h < heads; h++) {
        T* v = x + (t * heads + h) * D;
        for (int64_t i = 0; i < half; i++) {
          T x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c[i] - x2 * s[i];
          v[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  });
}

template void rope_apply<float>(float*, int64_t, int64_t, const std::vector<double>&, const std::vector<int32_t>&, bool);
template void rope_apply<double>(double*, int64_t, int64_t, const std::vector<double>&, const std::vector<int32_t>&, bool);

}  // namespace lmdr::cpu
