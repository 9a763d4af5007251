// Attention over packed variable-length sequences with grouped-query heads.
// q[T,Hq,D], k/v[T,Hkv,D]; query head h reads kv head h / (Hq/Hkv); sequence b owns rows
// cu[b]..cu[b+1]. Scores s_ij = scale * q_i.k_j, j <= i when causal; with AttentionMods,
// s_ij -> c tanh(s_ij / c) (soft-capping, Gemma 2) and only keys with i - j < window are seen
// (sliding window; HF masks kv_idx <= q_idx - sliding_window); a relative position bias
// (T5) adds rel_bias[j - i + span - 1, h] to s_ij before the cap, and the backward sums ds_ij
// into its gradient per sequence and split, reduced in a fixed order (no atomics).
//
// Forward: flash-style. A task is (sequence, head, block of kQ query rows); it streams key
// blocks of kK rows, keeping a running max m_i, a running sum l_i (double) and an output
// accumulator rescaled when the max grows (online softmax), so no L x L matrix ever exists.
// lse_i = m_i + log l_i is saved for the backward.
// Backward: recomputes p_ij = exp(s_ij - lse_i) block by block. A task is (sequence, kv head,
// range of key blocks) and covers every query head of the group, so it alone writes its dk/dv
// rows; dq goes straight to dq with one range per pair, else to per-range buffers summed in a
// fixed order: no races, no atomics, results independent of thread timing.
// Both loops are compiled per ISA level (cpu/isa.h); every product is small_gemm's register
// tile, and exp is approx_math.h's vector exp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu/approx_math.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

#define LMDR_INLINE inline __attribute__((always_inline))

// Vector-typed helpers are only inlined into per-ISA copies (see approx_math.h).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lmdr::cpu {
namespace {

constexpr int64_t kQ = 32;  // query rows per block
constexpr int64_t kK = 64;  // key rows per block

// kt[d][j] = row (row0 + j) of k, head kh, for j < n (zeros after): key blocks transposed so
// score rows come out contiguous over keys.
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

// One register tile of small_gemm: R output rows x (C vectors of W) columns at column c0.
template <typename T, int VB, int R, int C>
LMDR_INLINE void small_gemm_tile(T* out, int64_t ldo, const T* coef, int64_t cso, int64_t csi,
                                 const T* in, int64_t ldi, int64_t n_in, int64_t c0, T alpha) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int W = VB / sizeof(T);
  V acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) acc[r][c] = V{};
  for (int64_t j = 0; j < n_in; j++) {
    V x[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) std::memcpy(&x[c], in + j * ldi + c0 + c * W, sizeof(V));
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const T a = coef[r * cso + j * csi];
#pragma GCC unroll 8
      for (int c = 0; c < C; c++) acc[r][c] += a * x[c];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int c = 0; c < C; c++) {
      V o;
      std::memcpy(&o, out + r * ldo + c0 + c * W, sizeof(V));
      o += alpha * acc[r][c];
      std::memcpy(out + r * ldo + c0 + c * W, &o, sizeof(V));
    }
}

template <typename T, int VB, int R>
LMDR_INLINE void small_gemm_rows(T* out, int64_t ldo, const T* coef, int64_t cso, int64_t csi,
                                 const T* in, int64_t ldi, int64_t n_in, int64_t ncols, T alpha) {
  constexpr int W = VB / sizeof(T);
  constexpr int C = VB >= 64 ? 4 : 2;  // R*C accumulators + C loads fit the register file
  int64_t c0 = 0;
  for (; c0 + C * W <= ncols; c0 += C * W)
    small_gemm_tile<T, VB, R, C>(out, ldo, coef, cso, csi, in, ldi, n_in, c0, alpha);
  for (; c0 + W <= ncols; c0 += W)
    small_gemm_tile<T, VB, R, 1>(out, ldo, coef, cso, csi, in, ldi, n_in, c0, alpha);
  for (; c0 < ncols; c0++)  // column tail when ncols is not a multiple of the vector width
    for (int r = 0; r < R; r++) {
      T s = 0;
      for (int64_t j = 0; j < n_in; j++) s += coef[r * cso + j * csi] * in[j * ldi + c0];
      out[r * ldo + c0] += alpha * s;
    }
}

// out[r][c] += alpha * sum_j coef[r*cso + j*csi] * in[j*ldi + c] for r < n_out, c < ncols.
// Every product of attention is this shape: scores (coef = q rows, in = transposed key
// block), P V, P^T dout, dS^T q and dS k (the strides pick the transpose of P or dS).
template <typename T, int VB>
LMDR_INLINE void small_gemm(T* out, int64_t ldo, int64_t n_out, const T* coef, int64_t cso,
                            int64_t csi, const T* in, int64_t ldi, int64_t n_in, int64_t ncols,
                            T alpha) {
  int64_t r0 = 0;
  for (; r0 + 4 <= n_out; r0 += 4)
    small_gemm_rows<T, VB, 4>(out + r0 * ldo, ldo, coef + r0 * cso, cso, csi, in, ldi, n_in, ncols, alpha);
  for (; r0 < n_out; r0++)
    small_gemm_rows<T, VB, 1>(out + r0 * ldo, ldo, coef + r0 * cso, cso, csi, in, ldi, n_in, ncols, alpha);
}

// max and sum of one score row of kK entries, in vector registers (kK is a multiple of every W).
template <typename T, int VB> LMDR_INLINE T row_max(const T* x) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int W = VB / sizeof(T);
  V m;
  std::memcpy(&m, x, sizeof(V));
  for (int64_t j = W; j < kK; j += W) {
    V y;
    std::memcpy(&y, x + j, sizeof(V));
    m = m > y ? m : y;
  }
  T r = m[0];
  for (int w = 1; w < W; w++) r = m[w] > r ? m[w] : r;
  return r;
}
template <typename T, int VB> LMDR_INLINE T row_sum(const T* x) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int W = VB / sizeof(T);
  V s{};
  for (int64_t j = 0; j < kK; j += W) {
    V y;
    std::memcpy(&y, x + j, sizeof(V));
    s += y;
  }
  T r = 0;
  for (int w = 0; w < W; w++) r += s[w];
  return r;
}

// x[j] = exp(x[j] - shift) over one score row of kK entries (exp(-inf) = 0).
template <typename T, int VB> LMDR_INLINE void exp_row(T* x, T shift) {
  if constexpr (std::is_same<T, float>::value) {
    using V = typename FloatVec<VB>::V;
    for (int64_t j = 0; j < kK; j += VB / 4) store_vec(x + j, exp_approx_v<VB>(load_vec<V>(x + j) - shift));
  } else {
    for (int64_t j = 0; j < kK; j++) x[j] = std::exp(x[j] - shift);
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
  T softcap;       // 0 = none
  int64_t window;  // 0 = none
  const T* rel_bias = nullptr;      // [2 * span - 1, Hq] or none
  int64_t span = 0;
  T* dbias_parts = nullptr;         // backward: [splits][rel_total][Hq], sequence b's rows at rel_off[b]
  const int64_t* rel_off = nullptr;
  int64_t rel_total = 0;
};

// s[j] += rel_bias[j0 + j - qi + span - 1, h] for the n keys of a block (query qi, head h)
template <typename T> LMDR_INLINE void add_rel_bias(T* s, int64_t n, const Shapes<T>& sh, int64_t qi, int64_t j0, int64_t h) {
  const T* rb = sh.rel_bias + ((j0 - qi + sh.span - 1) * sh.Hq + h);
  for (int64_t j = 0; j < n; j++) s[j] += rb[j * sh.Hq];
}

// First key (relative to block start j0) that query `qi` may see: the sliding window's edge.
template <typename T> LMDR_INLINE int64_t first_visible(const Shapes<T>& sh, int64_t qi, int64_t j0) {
  return sh.window > 0 ? std::max<int64_t>(0, qi - sh.window + 1 - j0) : 0;
}

// s -> c tanh(s / c) on n entries; dcap[j] = 1 - tanh^2 (the derivative) when dcap is given.
template <typename T> LMDR_INLINE void softcap_row(T* s, int64_t n, T c, T* dcap) {
  for (int64_t j = 0; j < n; j++) {
    const T t = std::tanh(s[j] / c);
    s[j] = c * t;
    if (dcap) dcap[j] = T(1) - t * t;
  }
}

template <typename T, int VB>
LMDR_INLINE void forward_tasks(T* out, T* lse, const T* q, const T* k, const T* v,
                               const Shapes<T>& sh, const FwdTask* tasks, int64_t t0, int64_t t1) {
  const int64_t Hq = sh.Hq, Hkv = sh.Hkv, D = sh.D, group = Hq / Hkv, ldq = Hq * D, ldk = Hkv * D;
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
    const int64_t kbegin = sh.window > 0 ? std::max<int64_t>(0, q0 - sh.window + 1) / kK * kK : 0;
    for (int64_t j0 = kbegin; j0 < kend; j0 += kK) {
      const int64_t nk = std::min(kK, kend - j0);
      load_transposed(kt.data(), k, row0 + j0, nk, Hkv, kh, D);
      std::fill(s.begin(), s.end(), T(0));
      small_gemm<T, VB>(s.data(), kK, nq, qb, ldq, 1, kt.data(), kK, D, kK, sh.scale);
      for (int64_t i = 0; i < nq; i++) {
        T* __restrict si = s.data() + i * kK;
        // keys visible to query q0+i in this block: j < limit; the rest get p = 0
        const int64_t limit = sh.causal ? std::max<int64_t>(0, std::min(nk, q0 + i - j0 + 1)) : nk;
        const int64_t first = std::min(first_visible(sh, q0 + i, j0), limit);
        if (limit == first) {  // a row that sees none of this block
          std::fill(si, si + kK, T(0));
          continue;
        }
        if (sh.rel_bias) add_rel_bias(si, nk, sh, q0 + i, j0, h);
        if (sh.softcap > 0) softcap_row(si, nk, sh.softcap, static_cast<T*>(nullptr));
        for (int64_t j = 0; j < first; j++) si[j] = neg_inf;
        for (int64_t j = limit; j < kK; j++) si[j] = neg_inf;
        const T mx = std::max(m[i], row_max<T, VB>(si));
        const T corr = m[i] == neg_inf ? T(0) : exp_approx(T(m[i] - mx));
        exp_row<T, VB>(si, mx);
        l[i] = l[i] * double(corr) + double(row_sum<T, VB>(si));
        m[i] = mx;
        if (corr != T(1))
          for (int64_t d = 0; d < D; d++) acc[i * D + d] *= corr;
      }
      // acc[nq, D] += P[nq, nk] V[nk, D]
      small_gemm<T, VB>(acc.data(), D, nq, s.data(), kK, 1, v + ((row0 + j0) * Hkv + kh) * D, ldk, nk, D, T(1));
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
// Task ti = (sequence, kv head, split): split sp of `splits` owns a contiguous range of the
// sequence's key blocks, so its dk/dv rows are its alone; its dq contributions go to dq itself
// when splits == 1, else to its own partial buffer dq_parts[sp] ([T,Hq,D] each), summed in
// split order afterwards. Key blocks are the outer loop so a block's dk/dv stay in a small
// local accumulator.
template <typename T, int VB>
LMDR_INLINE void backward_tasks(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                const T* v, const T* out, const T* lse, const Shapes<T>& sh,
                                int64_t splits, T* dq_parts, int64_t t0, int64_t t1) {
  const int64_t Hq = sh.Hq, Hkv = sh.Hkv, D = sh.D, group = Hq / Hkv, ldq = Hq * D, ldk = Hkv * D;
  const std::vector<int32_t>& cu = *sh.cu;
  const T sc = sh.scale;
  std::vector<T> kt(D * kK), vt(D * kK), s(kQ * kK), dp(kQ * kK), dkb(kK * D), dvb(kK * D), delta, dcap(kK);
  for (int64_t ti = t0; ti < t1; ti++) {
    const int64_t b = ti / (Hkv * splits), kh = ti / splits % Hkv, sp = ti % splits;
    const int64_t row0 = cu[b], L = cu[b + 1] - row0;
    const int64_t blocks = (L + kK - 1) / kK;
    const int64_t j_begin = blocks * sp / splits * kK, j_end = std::min(L, blocks * (sp + 1) / splits * kK);
    T* dqt = splits == 1 ? dq : dq_parts + sp * cu.back() * ldq;
    // delta[g][i] = dout_i . out_i for query head kh*group + g; those heads' dq rows start at 0
    delta.assign(group * L, T(0));
    for (int64_t g = 0; g < group; g++)
      for (int64_t i = 0; i < L; i++) {
        const int64_t off = ((row0 + i) * Hq + kh * group + g) * D;
        double dd = 0;
        for (int64_t d = 0; d < D; d++) dd += double(dout[off + d]) * out[off + d];
        delta[g * L + i] = T(dd);
        std::fill_n(dqt + off, D, T(0));
      }
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kK) {
      const int64_t nk = std::min(kK, L - j0);
      const T* kb = k + ((row0 + j0) * Hkv + kh) * D;
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
          std::fill(s.begin(), s.end(), T(0));
          std::fill(dp.begin(), dp.end(), T(0));
          small_gemm<T, VB>(s.data(), kK, nq, qb, ldq, 1, kt.data(), kK, D, kK, sc);
          small_gemm<T, VB>(dp.data(), kK, nq, gb, ldq, 1, vt.data(), kK, D, kK, T(1));
          for (int64_t i = 0; i < nq; i++) {
            const int64_t limit = sh.causal ? std::max<int64_t>(0, std::min(nk, i0 + i - j0 + 1)) : nk;
            const int64_t first = std::min(first_visible(sh, i0 + i, j0), limit);
            const T li = lse[(row0 + i0 + i) * Hq + h], di = delta[g * L + i0 + i];
            T* __restrict si = s.data() + i * kK;
            T* __restrict dpi = dp.data() + i * kK;
            if (sh.rel_bias) add_rel_bias(si, nk, sh, i0 + i, j0, h);
            if (sh.softcap > 0) softcap_row(si, nk, sh.softcap, dcap.data());
            for (int64_t j = 0; j < first; j++) si[j] = -std::numeric_limits<T>::infinity();
            for (int64_t j = limit; j < kK; j++) si[j] = -std::numeric_limits<T>::infinity();
            exp_row<T, VB>(si, li);  // p_ij (0 where masked)
            for (int64_t j = 0; j < kK; j++) dpi[j] = si[j] * (dpi[j] - di);  // ds_ij
            if (sh.softcap > 0)  // through the cap: d(c tanh(s/c))/ds = 1 - tanh^2
              for (int64_t j = 0; j < nk; j++) dpi[j] *= dcap[j];
            if (sh.dbias_parts) {  // d(rel_bias)[j - i + L - 1, h] of this sequence and split += ds_ij
              T* db = sh.dbias_parts + ((sp * sh.rel_total + sh.rel_off[b] + j0 - (i0 + i) + L - 1) * Hq + h);
              for (int64_t j = 0; j < nk; j++) db[j * Hq] += dpi[j];
            }
            for (int64_t j = 0; j < kK; j++) dpi[j] *= sc;  // scale * ds_ij
          }
          // dv[nk, D] += P^T dout ; dk[nk, D] += dS^T q ; dq[nq, D] += dS k
          small_gemm<T, VB>(dvb.data(), D, nk, s.data(), 1, kK, gb, ldq, nq, D, T(1));
          small_gemm<T, VB>(dkb.data(), D, nk, dp.data(), 1, kK, qb, ldq, nq, D, T(1));
          small_gemm<T, VB>(dqt + ((row0 + i0) * Hq + h) * D, ldq, nq, dp.data(), kK, 1, kb, ldk, nk, D, T(1));
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
#define LMDR_ATTN_VARIANTS(SUFFIX, TARGET, T, VB)                                                    \
  __attribute__((target(TARGET), noinline)) void fwd_##SUFFIX(                                   \
      T* out, T* lse, const T* q, const T* k, const T* v, const Shapes<T>& sh,                   \
      const FwdTask* tasks, int64_t t0, int64_t t1) {                                            \
    forward_tasks<T, VB>(out, lse, q, k, v, sh, tasks, t0, t1);                                         \
  }                                                                                              \
  __attribute__((target(TARGET), noinline)) void bwd_##SUFFIX(                                   \
      T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,      \
      const T* lse, const Shapes<T>& sh, int64_t splits, T* dq_parts, int64_t t0, int64_t t1) {   \
    backward_tasks<T, VB>(dq, dk, dv, dout, q, k, v, out, lse, sh, splits, dq_parts, t0, t1);         \
  }
LMDR_ATTN_VARIANTS(f32_avx512, "avx512f,avx2,fma", float, 64)
LMDR_ATTN_VARIANTS(f32_avx2, "avx2,fma", float, 32)
LMDR_ATTN_VARIANTS(f32_generic, "sse2", float, 16)
LMDR_ATTN_VARIANTS(f64_avx512, "avx512f,avx2,fma", double, 64)
LMDR_ATTN_VARIANTS(f64_avx2, "avx2,fma", double, 32)
LMDR_ATTN_VARIANTS(f64_generic, "sse2", double, 16)
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
                       bool causal, double scale, const AttentionMods& mods) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1;
  std::vector<FwdTask> tasks;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++)
      for (int64_t q0 = 0; q0 < cu_seqlens[b + 1] - cu_seqlens[b]; q0 += kQ) tasks.push_back({b, h, q0});
  Shapes<T> sh{Hq, Hkv, D, &cu_seqlens, causal, T(scale), T(mods.softcap), mods.window};
  if (mods.rel_bias) {
    sh.rel_bias = mods.rel_bias->ptr<T>();
    sh.span = (mods.rel_bias->dim(0) + 1) / 2;
  }
  auto fn = pick(Variants<T>::fwd);
  parallel_for(int64_t(tasks.size()), 1, [&](int64_t t0, int64_t t1) {
    fn(out, lse, q, k, v, sh, tasks.data(), t0, t1);
  });
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int64_t Hq, int64_t Hkv, int64_t D,
                        const std::vector<int32_t>& cu_seqlens, bool causal, double scale,
                        const AttentionMods& mods) {
  const int64_t B = int64_t(cu_seqlens.size()) - 1, T_total = cu_seqlens.empty() ? 0 : cu_seqlens.back();
  Shapes<T> sh{Hq, Hkv, D, &cu_seqlens, causal, T(scale), T(mods.softcap), mods.window};
  if (mods.rel_bias) {
    sh.rel_bias = mods.rel_bias->ptr<T>();
    sh.span = (mods.rel_bias->dim(0) + 1) / 2;
  }
  // Few (sequence, kv head) pairs for many threads: split key ranges too, at most 8 ways and
  // with at most ~64 MB of dq partials.
  const int64_t want = (2 * num_threads() + B * Hkv - 1) / std::max<int64_t>(B * Hkv, 1);
  const int64_t fit = int64_t(64 << 20) / std::max<int64_t>(T_total * Hq * D * int64_t(sizeof(T)), 1);
  const int64_t splits = std::clamp<int64_t>(std::min(want, fit), 1, 8);
  std::vector<T> dq_parts(splits > 1 ? size_t(splits * T_total * Hq * D) : 0);
  // the relative bias gradient: sequence b's 2 L_b - 1 relative positions per split, summed below
  std::vector<int64_t> rel_off(size_t(std::max<int64_t>(B, 0)));
  std::vector<T> dbias_parts;
  if (mods.rel_bias && mods.d_rel_bias) {
    for (int64_t b = 0; b < B; b++) {
      rel_off[b] = sh.rel_total;
      sh.rel_total += 2 * int64_t(cu_seqlens[b + 1] - cu_seqlens[b]) - 1;
    }
    dbias_parts.assign(size_t(splits * sh.rel_total * Hq), T(0));
    sh.dbias_parts = dbias_parts.data();
    sh.rel_off = rel_off.data();
  }
  auto fn = pick(Variants<T>::bwd);
  parallel_for(B * Hkv * splits, 1, [&](int64_t t0, int64_t t1) {
    fn(dq, dk, dv, dout, q, k, v, out, lse, sh, splits, dq_parts.data(), t0, t1);
  });
  if (sh.dbias_parts) {  // d_rel_bias[d + span - 1, h] = sum over sequences (in order) and splits
    T* db = mods.d_rel_bias->ptr<T>();
    std::fill_n(db, mods.d_rel_bias->numel(), T(0));
    for (int64_t b = 0; b < B; b++) {
      const int64_t L = cu_seqlens[b + 1] - cu_seqlens[b];
      for (int64_t sp = 0; sp < splits; sp++)
        for (int64_t r = 0; r < 2 * L - 1; r++)
          for (int64_t h = 0; h < Hq; h++)
            db[(r - (L - 1) + sh.span - 1) * Hq + h] += dbias_parts[size_t((sp * sh.rel_total + rel_off[b] + r) * Hq + h)];
    }
  }
  if (splits == 1) return;
  const int64_t n = T_total * Hq * D;
  parallel_for(n, 1 << 14, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; i++) {
      T sum = dq_parts[i];
      for (int64_t sp = 1; sp < splits; sp++) sum += dq_parts[sp * n + i];
      dq[i] = sum;
    }
  });
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double, const AttentionMods&);
template void attention_forward<double>(double*, double*, const double*, const double*, const double*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double, const AttentionMods&);
template void attention_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*, const float*, const float*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double, const AttentionMods&);
template void attention_backward<double>(double*, double*, double*, const double*, const double*, const double*, const double*, const double*, const double*, int64_t, int64_t, int64_t, const std::vector<int32_t>&, bool, double, const AttentionMods&);

}  // namespace lmdr::cpu
