// Fused contrastive InfoNCE loss and gradients.
// q[B,H], p[B*G,H] (query i's positive is row i*G, the rest of the batch are negatives).
// sim = cosine (rows L2-normalised with F.normalize's eps 1e-12) or dot; s_ij = sim_ij / tau.
// loss = mean_i (logsumexp_j s_ij - s_{i,iG}); dS = (softmax(S) - onehot) / B.
// The two products (S and the gradient back through it) run on the GEMM; the softmax and the
// loss are in double.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {

// y = x / n with n = max(||x||, 1e-12); keeps n per row.
template <typename T>
void normalize_rows(T* y, std::vector<double>& norms, const T* x, int64_t rows, int64_t H) {
  norms.resize(rows);
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      double ss = 0;
      for (int64_t i = 0; i < H; i++) ss += double(x[r * H + i]) * x[r * H + i];
      double n = std::max(std::sqrt(ss), 1e-12);
      norms[r] = n;
      for (int64_t i = 0; i < H; i++) y[r * H + i] = T(x[r * H + i] / n);
    }
  });
}

// In place dy -> dx for y = x / max(||x||, eps): dx = (dy - y (y.dy)) / n when ||x|| > eps,
// else dy / eps (the clamp is constant there).
template <typename T>
void normalize_rows_backward(T* d, const T* y, const std::vector<double>& norms, int64_t rows,
                             int64_t H) {
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(H, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      double n = norms[r], yd = 0;
      T* dr = d + r * H;
      const T* yr = y + r * H;
      if (n > 1e-12)
        for (int64_t i = 0; i < H; i++) yd += double(yr[i]) * dr[i];
      for (int64_t i = 0; i < H; i++) dr[i] = T((dr[i] - yr[i] * yd) / n);
    }
  });
}

}  // namespace

template <typename T>
double infonce_forward_backward(T* dq, T* dp, const T* q, const T* p, int64_t B, int64_t G,
                                int64_t H, double temperature, bool cosine) {
  const int64_t P = B * G;
  std::vector<T> qn, pn;
  std::vector<double> qnorm, pnorm;
  const T *qa = q, *pa = p;
  if (cosine) {
    qn.resize(B * H);
    pn.resize(P * H);
    normalize_rows(qn.data(), qnorm, q, B, H);
    normalize_rows(pn.data(), pnorm, p, P, H);
    qa = qn.data();
    pa = pn.data();
  }
  // S[B,P] = qa pa^T / tau
  std::vector<T> S(B * P);
  matmul(S.data(), qa, pa, B, P, H, false, true, T(1.0 / temperature), T(0));
  std::vector<double> row_loss(B);
  parallel_for(B, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      T* s = S.data() + i * P;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < P; j++) mx = std::max(mx, double(s[j]));
      for (int64_t j = 0; j < P; j++) sum += std::exp(double(s[j]) - mx);
      const double lse = mx + std::log(sum);
      row_loss[i] = lse - double(s[i * G]);
      for (int64_t j = 0; j < P; j++)  // S becomes dL/dS
        s[j] = T((std::exp(double(s[j]) - lse) - (j == i * G ? 1.0 : 0.0)) / double(B));
    }
  });
  double loss = 0;
  for (double l : row_loss) loss += l;
  loss /= double(B);
  // dqa = dS pa / tau ; dpa = dS^T qa / tau
  matmul(dq, S.data(), pa, B, H, P, false, false, T(1.0 / temperature), T(0));
  matmul(dp, S.data(), qa, P, H, B, true, false, T(1.0 / temperature), T(0));
  if (cosine) {
    normalize_rows_backward(dq, qa, qnorm, B, H);
    normalize_rows_backward(dp, pa, pnorm, P, H);
  }
  return loss;
}

template double infonce_forward_backward<float>(float*, float*, const float*, const float*, int64_t, int64_t, int64_t, double, bool);
template double infonce_forward_backward<double>(double*, double*, const double*, const double*, int64_t, int64_t, int64_t, double, bool);

}  // namespace lmdr::cpu
