// Optimiser steps and the gradient-norm reduction, elementwise in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {
constexpr int64_t kGrain = 1 << 15;
}

// sum x^2 in double; fixed chunks summed in order, so the result does not depend on threads.
template <typename T> double sum_squares(const T* x, int64_t n) {
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(chunks, 0.0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double s = 0;
      for (int64_t i = c * kGrain; i < std::min(n, (c + 1) * kGrain); i++) s += double(x[i]) * x[i];
      partial[c] = s;
    }
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

// torch.optim.AdamW (amsgrad off), g = grad * grad_scale:
//   p *= 1 - lr wd ; m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2
//   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, int64_t step, double grad_scale) {
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2_sqrt = std::sqrt(1 - std::pow(beta2, double(step)));
  const double step_size = lr / bc1, decay = 1 - lr * weight_decay;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      double g = double(grad[i]) * grad_scale;
      double mi = beta1 * m[i] + (1 - beta1) * g;
      double vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = T(mi);
      v[i] = T(vi);
      double pi = double(param[i]) * decay;
      param[i] = T(pi - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  });
}

// p -= lr (g * grad_scale + wd p)
template <typename T>
void sgd_step(T* param, const T* grad, int64_t n, double lr, double weight_decay, double grad_scale) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      double pi = param[i];
      param[i] = T(pi - lr * (double(grad[i]) * grad_scale + weight_decay * pi));
    }
  });
}

template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);
template void adamw_step<float>(float*, const float*, float*, float*, int64_t, double, double, double, double, double, int64_t, double);
template void adamw_step<double>(double*, const double*, double*, double*, int64_t, double, double, double, double, double, int64_t, double);
template void sgd_step<float>(float*, const float*, int64_t, double, double, double);
template void sgd_step<double>(double*, const double*, int64_t, double, double, double);

}  // namespace lmdr::cpu
