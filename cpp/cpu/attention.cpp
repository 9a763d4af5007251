// Attention over packed variable-length sequences with grouped-query heads.
// q[T,Hq,D], k/v[T,Hkv,D]; query head h reads kv head h / (Hq/Hkv); sequence b owns rows
// cu[b]..cu[b+1]. Scores s_ij = scale * q_i.k_j, j <= i when causal.
//
// Forward: flash-style. A task is (sequence, head, block of kQ query rows); it streams key
// blocks of kK rows, keeping a running max m_i, a running sum l_i (double) and an output
// accumulator rescaled when the max grows (online softmax), so no L x L matrix ever exists.
// lse_i = m_i + log l_i is saved for the backward.
// Backward: recomputes p_ij = exp(s_ij - lse_i) block by block. A task is (sequence, kv head)
// and covers every query head of its group, so it alone writes its dk/dv rows (and those query
// heads' dq rows): no races, no atomics, deterministic sums.
// Both loops are compiled per ISA level (cpu/isa.h); exp is the vectorisable exp_approx.
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "cpu/exp_approx.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

#define LMDR_INLINE inline __attribute__((always_inline))

namespace lmdr::cpu {
namespace {

constexpr int64_t kQ = 32;  // query rows per block
constexpr int64_t kK = 64;  // key rows per block

// kt[d][j] = row (row0 + j) of k, head kh, for j < n (zeros after): key blocks transposed so
// score loops run contiguously over keys and vectorise.
template <typename T>
LMDR_INLINE void load_transposed(T* kt, const T* k, int64_t row0, int64_t n, int64_t Hkv,
                                 int64_t kh, int64_t D) {
  for (int64_t j = 0; j < n; j++) {
    const T* kr = k + ((row0 + j) * Hkv + kh) * D;
    for (int64_t d = 0; d < D; d++) kt[d * kK + j] = kr[d];
  }
  for (int64_t d = 0; d < D; d++)
    for (int64_t j = n; j < kK; j++) kt[d * kK + j] = T(0);
}

// s[i][j] = scale * sum_d q[i][d] kt[d][j] for nq query rows (row stride ldq) x kK keys.
template <typename T>
LMDR_INLINE void block_scores(T* __restrict s, const T* q, int64_t ldq, int64_t nq,
                              const T* __restrict kt, int64_t D, T scale) {
  for (int64_t i = 0; i < nq; i++) {
    T* __restrict si = s + i * kK;
    for (int64_t j = 0; j < kK; j++) si[j] = T(0);
    const T* qi = q + i * ldq;
    for (int64_t d = 0; d < D; d++) {
      const T a = qi[d] * scale;
      const T* __restrict kd = kt + d * kK;
      for (int64_t j = 0; j < kK; j++) si[j] += a * kd[j];
    }
  }
}

struct FwdTask {
  int64_t seq, head, q0;
};

template <typename T> struct Shapes {
  int64_t Hq, Hkv, D;
  const std::vector<int32_t>* cu;
  bool causal;
  T scale;
};

template <typename T>
LMDR_INLINE void forward_tasks(T* out, T* lse, const T* q, const T* k, const T* v,
                               const Shapes<T>& sh, const FwdTask* tasks, int64_t t0, int64_t t1) {
  const int64_t Hq = sh.Hq, Hkv = sh.Hkv, D = sh.D, group = Hq / Hkv, ldq = Hq * D;
  const std::vector<int32_t>& cu = *sh.cu;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  std::vector<T> kt(D * kK), s(kQ * kK), acc(kQ * D);
  T m[kQ];
  double l[kQ];
  for (int64_t ti = t0; ti < t1; ti++) {
    const FwdTask& task = tasks[ti];
    const int64_t row0 = cu[task.seq], L = cu[task.seq + 1] - row0;
    const int64_t h = task.head, kh = h / group, q0 = task.q0, nq = std::min(kQ, L - q0);
    const T* qb = q + ((row0 + q0) * Hq + h) * D;
    std::fill(acc.begin(), acc.end(), T(0));
    std::fill(m, m + kQ, neg_inf);
    std::fill(l, l + kQ, 0.0);
    const int64_t kend = sh.causal ? q0 + nq : L;
    for (int64_t j0 = 0; j0 < kend; j0 += kK) {
      const int64_t nk = std::min(kK, kend - j0);
      load_transposed(kt.data(), k, row0 + j0, nk, Hkv, kh, D);
      block_scores(s.data(), qb, ldq, nq, kt.data(), D, sh.scale);
      for (int64_t i = 0; i < nq; i++) {
        T* __restrict si = s.data() + i * kK;
        // keys visible to query q0+i in this block: j < limit
        const int64_t limit = sh.causal ? std::min(nk, q0 + i - j0 + 1) : nk;
        if (limit <= 0) continue;
        T mx = m[i];
        for (int64_t j = 0; j < limit; j++) mx = std::max(mx, si[j]);
        const T corr = m[i] == neg_inf ? T(0) : exp_approx(T(m[i] - mx));
        for (int64_t j = 0; j < limit; j++) si[j] = exp_approx(T(si[j] - mx));
        T sum = 0;
        for (int64_t j = 0; j < limit; j++) sum += si[j];
        l[i] = l[i] * double(corr) + double(sum);
        m[i] = mx;
        T* __restrict ai = acc.data() + i * D;
        if (corr != T(1))
          for (int64_t d = 0; d < D; d++) ai[d] *= corr;
        for (int64_t j = 0; j < limit; j++) {
          const T pj = si[j];
          const T* __restrict vj = v + ((row0 + j0 + j) * Hkv + kh) * D;
          for (int64_t d = 0; d < D; d++) ai[d] += pj * vj[d];
        }
      }
    }
    for (int64_t i = 0; i < nq; i++) {
      const int64_t row = row0 + q0 + i;
      const T inv = T(1.0 / l[i]);
      T* o = out + (row * Hq + h) * D;
      for (int64_t d = 0; d < D; d++) o[d] = acc[i * D + d] * inv;
      lse[row * Hq + h] = T(double(m[i]) + std::log(l[i]));
    }
  }
}

// dv_j = sum_i p_ij dout_i ; dp_ij = dout_i . v_j ; ds_ij = p_ij (dp_ij - delta_i) with
// delta_i = dout_i . out_i ; dq_i = scale sum_j ds_ij k_j ; dk_j = scale sum_i ds_ij q_i.
// Task ti = (sequence ti / Hkv, kv head ti % Hkv). Key blocks are the outer loop so the
// block's dk/dv stay in a small local accumulator.
template <typename T>
LMDR_INLINE void backward_tasks(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                const T* v, const T* out, const T* lse, const Shapes<T>& sh,
                                int64_t t0, int64_t t1) {
  const int64_t Hq = sh.Hq, Hkv = sh.Hkv, D = sh.D, group = Hq / Hkv, ldq = Hq * D;
  const std::vector<int32_t>& cu = *sh.cu;
  const T sc = sh.scale;
  std::vector<T> kt(D * kK), vt(D * kK), s(kQ * kK), dp(kQ * kK), dkb(kK * D), dvb(kK * D), delta;
  for (int64_t ti = t0; ti < t1; ti++) {
    const int64_t b = ti / Hkv, kh = ti % Hkv;
    const int64_t row0 = cu[b], L = cu[b + 1] - row0;
    // delta[g][i] = dout_i . out_i for query head kh*group + g; those heads' dq rows start at 0
    delta.assign(group * L, T(0));
    for (int64_t g = 0; g < group; g++)
      for (int64_t i = 0; i < L; i++) {
        const int64_t off = ((row0 + i) * Hq + kh * group + g) * D;
        double dd = 0;
        for (int64_t d = 0; d < D; d++) dd += double(dout[off + d]) * out[off + d];
        delta[g * L + i] = T(dd);
        std::fill_n(dq + off, D, T(0));
      }
    for (int64_t j0 = 0; j0 < L; j0 += kK) {
      const int64_t nk = std::min(kK, L - j0);
      load_transposed(kt.data(), k, row0 + j0, nk, Hkv, kh, D);
      load_transposed(vt.data(), v, row0 + j0, nk, Hkv, kh, D);
      std::fill(dkb.begin(), dkb.end(), T(0));
      std::fill(dvb.begin(), dvb.end(), T(0));
      for (int64_t g = 0; g < group; g++) {
        const int64_t h = kh * group + g;
        for (int64_t i0 = sh.causal ? j0 / kQ * kQ : 0; i0 < L; i0 += kQ) {
          const int64_t nq = std::min(kQ, L - i0);
          const T* qb = q + ((row0 + i0) * Hq + h) * D;
          const T* gb = dout + ((row0 + i0) * Hq + h) * D;
          block_scores(s.data(), qb, ldq, nq, kt.data(), D, sc);
          block_scores(dp.data(), gb, ldq, nq, vt.data(), D, T(1));
          for (int64_t i = 0; i < nq; i++) {
            const int64_t limit =
                sh.causal ? std::max<int64_t>(0, std::min(nk, i0 + i - j0 + 1)) : nk;
            const T li = lse[(row0 + i0 + i) * Hq + h], di = delta[g * L + i0 + i];
            T* __restrict si = s.data() + i * kK;
            T* __restrict dpi = dp.data() + i * kK;
            for (int64_t j = 0; j < limit; j++) {
              const T p = exp_approx(T(si[j] - li));
              si[j] = p;                          // p_ij
              dpi[j] = p * (dpi[j] - di) * sc;    // scale * ds_ij
            }
            const T* __restrict gi = gb + i * ldq;
            const T* __restrict qi = qb + i * ldq;
            T* __restrict dqi = dq + ((row0 + i0 + i) * Hq + h) * D;
            for (int64_t j = 0; j < limit; j++) {
              const T pj = si[j], dsj = dpi[j];
              T* __restrict dvj = dvb.data() + j * D;
              T* __restrict dkj = dkb.data() + j * D;
              const T* __restrict kj = k + ((row0 + j0 + j) * Hkv + kh) * D;
              for (int64_t d = 0; d < D; d++) {
                dvj[d] += pj * gi[d];
                dkj[d] += dsj * qi[d];
                dqi[d] += dsj * kj[d];
              }
            }
          }
        }
      }
      for (int64_t j = 0; j < nk; j++) {
        const int64_t off = ((row0 + j0 + j) * Hkv + kh) * D;
        std::copy_n(dkb.data() + j * D, D, dk + off);
        std::copy_n(dvb.data() + j * D, D, dv + off);
      }
    }
  }
}

// One compiled copy of each loop per ISA level.
#define LMDR_ATTN_VARIANTS(SUFFIX, TARGET, T)                                                     \
  __attribute__((target(TARGET), noinline)) void fwd_##SUFFIX(                                   \
      T* out, T* lse, const T* q, const T* k, const T* v, const Shapes<T>& sh,                   \
      const FwdTask* tasks, int64_t t0, int64_t t1) {                                            \
    forward_tasks(out, lse, q, k, v, sh, tasks, t0, t1);                                         \
  }                                                                                              \
  __attribute__((target(TARGET), noinline)) void bwd_##SUFFIX(                                   \
      T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,      \
      const T* lse, const Shapes<T>& sh, int64_t t0, int64_t t1) {                               \
    backward_tasks(dq, dk, dv, dout, q, k, v, out, lse, sh, t0, t1);                             \
  }
LMDR_ATTN_VARIANTS(f32_avx512, "avx512f,avx2,fma", float)
LMDR_ATTN_VARIANTS(f32_avx2, "avx2,fma", float)
LMDR_ATTN_VARIANTS(f32_generic, "sse2", float)
LMDR_ATTN_VARIANTS(f64_avx512, "avx512f,avx2,fma", double)
LMDR_ATTN_VARIANTS(f64_avx2, "avx2,fma", double)
LMDR_ATTN_VARIANTS(f64_generic, "sse2", double)
#undef LMDR_ATTN_VARIANTS

template <typename T> struct Variants;
template <> struct Variants<float> {
  static constexpr auto fwd = std::make_tuple(fwd_f32_generic, fwd_f32_avx2, fwd_f32_avx512);
  static constexpr auto bwd = std::make_tuple(bwd_f32_generic, bwd_f32_avx2, bwd_f32_avx512);
};
template <> struct Variants<double> {
  static constexpr auto fwd = std::make_tuple(fwd_f64_generic, fwd_f64_avx2, fwd_f64_avx512);
  static constexpr auto bwd = std::make_tuple(bwd_f64_generic, bwd_f64_avx2, bwd_f64_avx512);
};
template <typename Tuple> auto pick(const Tuple& t) {
  switch (cpu_isa()) {
    case Isa::Avx512: return std::get<2>(t);
    case Isa::Avx2: return std::get<1>(t);
    default: return std::get<0>(t);
  }
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t Hq,
                       int64_t Hkv, int64_t D, const std::vector<int32_t>& cu_seqlens,
                       bool causal, double scale) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  std::vector<FwdTask> tasks;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t q0 = 0; q0 < cu_seqlens[b + 1] - cu_seqlens[b]; q0 += kQ) tasks.push_back({b, h, q0});
  const Shapes<T> sh{Hq, Hkv, D, &cu_seqlens, causal, T(scale)};
  auto fn = pick(Variants<T>::fwd);
  parallel_for(int64_t(tasks.size()), 1, [&](int64_t t0, int64_t t1) {
    fn(out, lse, q, k, v, sh, tasks.data(), t0, t1);
  });
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int64_t Hq, int64_t Hkv, int64_t D,
                        const std::vector<int32_t>& cu_seqlens, bool causal, double scale) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  const Shapes<T> sh{Hq, Hkv, D, &cu_seqlens, causal, T(scale)};
  auto fn = pick(Variants<T>::bwd);
  parallel_for(B * Hkv, 1, [&](int64_t t0, int64_t t1) {
    fn(dq, dk, dv, dout, q, k, v, out, lse, sh, t0, t1);
  });
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double);
template void attention_forward<double>(double*, double*, const double*, const double*, const double*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double);
template void attention_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double);
template void attention_backward<double>(double*, double*, double*, const double*, const double*, const double*, const double*, const double*, const double*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double);

}  // namespace lmdr::cpu
