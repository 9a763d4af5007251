// Causal-LM head, one vocabulary block at a time: the block's logits (optionally soft-capped,
// Gemma 2's final_logit_softcapping) fold into a running log-sum-exp per row, and the target's
// logit is picked up when it lies in the block. Sums in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {

// logits[N,Vb] (capped in place), run_max[N], run_sum[N] (sum of exp(l - run_max)), target[N]
template <typename T>
void logits_block_update(T* logits, T* run_max, T* run_sum, T* target, const int32_t* targets,
                         int64_t N, int64_t Vb, int64_t v0, double softcap) {
  parallel_for(N, std::max<int64_t>(1, 8192 / std::max<int64_t>(Vb, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      T* l = logits + r * Vb;
      if (softcap > 0)
        for (int64_t j = 0; j < Vb; j++) l[j] = T(softcap * std::tanh(double(l[j]) / softcap));
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < Vb; j++) mx = std::max(mx, double(l[j]));
      const double old = double(run_max[r]);
      const double m = std::max(old, mx);
      double sum = std::isinf(old) && old < 0 ? 0.0 : double(run_sum[r]) * std::exp(old - m);
      for (int64_t j = 0; j < Vb; j++) sum += std::exp(double(l[j]) - m);
      run_max[r] = T(m);
      run_sum[r] = T(sum);
      const int64_t t = int64_t(targets[r]) - v0;
      if (t >= 0 && t < Vb) target[r] = l[t];
    }
  });
}

template void logits_block_update<float>(float*, float*, float*, float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void logits_block_update<double>(double*, double*, double*, double*, const int32_t*, int64_t, int64_t, int64_t, double);

}  // namespace lmdr::cpu
