// Fused retrieval loss (core/retrieval_loss.h has the formulas): InfoNCE, weighted with KL or
// stabilized distillation against teacher scores, in one pass over the score matrix.
// q[B,H], p[B*G,H] (query i's group is rows i*G .. i*G+G-1; the rest of the batch are in-batch
// negatives). sim = cosine (rows L2-normalised with F.normalize's eps 1e-12) or dot;
// s_ij = sim_ij / tau. dS = dL/dS row by row, in double; the two products (S and the gradient
// back through it) run on the GEMM.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/retrieval_loss.h"
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

// One query's row: s[P] scores in, g[P] = dL/ds (already divided by B) out; returns the
// unweighted parts {contrastive_b, distill_b}.
std::pair<double, double> loss_row(double* g, const double* s, int64_t b, int64_t B, int64_t P,
                                   const LossSpec& spec, const LossLayout& lay) {
  const int64_t G = spec.group, base = b * G;
  const int64_t lo = spec.in_batch ? 0 : base, hi = spec.in_batch ? P : base + G;  // allowed columns
  const int32_t* rank = lay.rank.data() + base;
  const int32_t* rank_of = lay.rank_of.data() + base;
  for (int64_t j = 0; j < P; j++) g[j] = 0;
  double mx = -INFINITY;
  for (int64_t j = lo; j < hi; j++) mx = std::max(mx, s[j]);
  // logsumexp over the allowed columns outside ranks 0..skip-1 of the own group
  auto lse_from = [&](int64_t skip) {
    double sum = 0;
    for (int64_t j = lo; j < hi; j++) {
      bool own = j >= base && j < base + G;
      if (own && rank_of[j - base] < skip) continue;
      sum += std::exp(s[j] - mx);
    }
    return mx + std::log(sum);
  };
  // g += scale * (softmax over the same columns - onehot(target))
  auto add_ce_grad = [&](double scale, double lse, int64_t skip, int64_t target) {
    for (int64_t j = lo; j < hi; j++) {
      bool own = j >= base && j < base + G;
      if (own && rank_of[j - base] < skip) continue;
      g[j] += scale * std::exp(s[j] - lse);
    }
    g[target] -= scale;
  };
  const double invB = 1.0 / double(B);
  double contrastive = 0, distill = 0;
  {
    const int64_t t0 = base + rank[0];
    const double lse = lse_from(0);
    contrastive = lse - s[t0];
    if (spec.contrastive_weight != 0) add_ce_grad(spec.contrastive_weight * invB, lse, 0, t0);
  }
  if (spec.distill == Distill::Kl) {
    const double* w = lay.weight.data() + base;
    const double Ts = spec.student_temperature;
    double m = -INFINITY, sum = 0;
    for (int64_t k = 0; k < G; k++) m = std::max(m, s[base + k] / Ts);
    for (int64_t k = 0; k < G; k++) sum += std::exp(s[base + k] / Ts - m);
    const double lse = m + std::log(sum);
    for (int64_t k = 0; k < G; k++) {
      const double logp = s[base + k] / Ts - lse;
      if (w[k] > 0) distill += w[k] * (std::log(w[k]) - logp);
      g[base + k] += spec.distill_weight * invB * (std::exp(logp) - w[k]) / Ts;
    }
  } else if (spec.distill == Distill::Stable) {
    const double* w = lay.weight.data() + base;
    for (int64_t i = 0; i < G; i++) {
      const int64_t target = base + rank[i];
      const double lse = lse_from(i);
      const double wi = w[rank[i]];
      distill += wi * (lse - s[target]);
      if (spec.distill_weight != 0) add_ce_grad(spec.distill_weight * invB * wi, lse, i, target);
    }
  }
  return {contrastive, distill};
}

}  // namespace

template <typename T>
LossParts infonce_forward_backward(T* dq, T* dp, const T* q, const T* p, int64_t B, int64_t H,
                                   const LossSpec& spec) {
  const int64_t G = spec.group, P = B * G;
  const LossLayout lay = loss_layout(spec, B);
  const double temperature = spec.temperature;
  const bool cosine = spec.cosine;
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
  std::vector<std::pair<double, double>> parts(B);
  parallel_for(B, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> s(P), g(P);
    for (int64_t i = r0; i < r1; i++) {
      T* row = S.data() + i * P;
      for (int64_t j = 0; j < P; j++) s[j] = double(row[j]);
      parts[i] = loss_row(g.data(), s.data(), i, B, P, spec, lay);
      for (int64_t j = 0; j < P; j++) row[j] = T(g[j]);  // S becomes dL/dS
    }
  });
  LossParts out;
  for (auto& pr : parts) {
    out.contrastive += pr.first;
    out.distill += pr.second;
  }
  out.contrastive /= double(B);
  out.distill /= double(B);
  out.loss = spec.contrastive_weight * out.contrastive + spec.distill_weight * out.distill;
  // dqa = dS pa / tau ; dpa = dS^T qa / tau
  matmul(dq, S.data(), pa, B, H, P, false, false, T(1.0 / temperature), T(0));
  matmul(dp, S.data(), qa, P, H, B, true, false, T(1.0 / temperature), T(0));
  if (cosine) {
    normalize_rows_backward(dq, qa, qnorm, B, H);
    normalize_rows_backward(dp, pa, pnorm, P, H);
  }
  return out;
}

template LossParts infonce_forward_backward<float>(float*, float*, const float*, const float*, int64_t, int64_t, const LossSpec&);
template LossParts infonce_forward_backward<double>(double*, double*, const double*, const double*, int64_t, int64_t, const LossSpec&);

}  // namespace lmdr::cpu
