// GEMM for the CPU backend: C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C.
//
// Goto/BLIS structure: for each NC-column panel and KC-deep slice, op(B) is packed into
// NR-wide strips and op(A) into MR-tall strips (zero padded, so edge tiles need no special
// loads), then threads take (MC rows x NT cols) tiles and run an MR x NR register-blocked
// micro-kernel over them. The micro-kernel is written with GCC vector extensions and compiled
// three times (AVX-512, AVX2+FMA, baseline SSE2) through target attributes; cpu/isa.h picks the
// widest one the running CPU supports.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "cpu/ops.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {

constexpr int64_t KC = 256;   // depth of one packed slice: an NR strip of B (KC x NR) fits L1
constexpr int64_t MC = 168;   // rows per tile: an A block (MC x KC) fits L2 (multiple of 6 and 14)
constexpr int64_t NC = 2048;  // columns per packed B panel

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Packed A: for each MR-row strip s, element (i, k) at s*MR*kc + k*MR + i.
template <typename T>
void pack_a(T* dst, const T* A, bool trans, int64_t M, int64_t K, int64_t i0, int64_t mr,
            int64_t strip_begin, int64_t strip_end, int64_t pc, int64_t kc) {
  for (int64_t s = strip_begin; s < strip_end; s++) {
    T* out = dst + s * mr * kc;
    int64_t row0 = i0 + s * mr, rows = std::min<int64_t>(mr, M - row0);
    for (int64_t k = 0; k < kc; k++) {
      for (int64_t i = 0; i < rows; i++)
        out[k * mr + i] = trans ? A[(pc + k) * M + row0 + i] : A[(row0 + i) * K + pc + k];
      for (int64_t i = rows; i < mr; i++) out[k * mr + i] = T(0);
    }
  }
}

// Packed B: for each NR-column strip s, element (k, j) at s*NR*kc + k*NR + j.
template <typename T>
void pack_b(T* dst, const T* B, bool trans, int64_t N, int64_t K, int64_t j0, int64_t nr,
            int64_t strip_begin, int64_t strip_end, int64_t pc, int64_t kc) {
  for (int64_t s = strip_begin; s < strip_end; s++) {
    T* out = dst + s * nr * kc;
    int64_t col0 = j0 + s * nr, cols = std::min<int64_t>(nr, N - col0);
    for (int64_t k = 0; k < kc; k++) {
      if (!trans && cols == nr) {
        std::memcpy(out + k * nr, B + (pc + k) * N + col0, sizeof(T) * nr);
        continue;
      }
      for (int64_t j = 0; j < cols; j++)
        out[k * nr + j] = trans ? B[(col0 + j) * K + pc + k] : B[(pc + k) * N + col0 + j];
      for (int64_t j = cols; j < nr; j++) out[k * nr + j] = T(0);
    }
  }
}

// One MR x NR block of C from packed strips a (MR x kc) and b (kc x NR).
// c = alpha * acc + beta * c (beta_zero: c = alpha * acc, ignoring what c held).
template <typename T, int VB, int MR, int NV>
inline __attribute__((always_inline)) void micro_kernel(int64_t kc, const T* __restrict a,
                                                        const T* __restrict b, T* c, int64_t ldc,
                                                        T alpha, T beta, bool beta_zero) {
  typedef T V __attribute__((vector_size(VB)));
  constexpr int W = VB / sizeof(T);
  constexpr int NR = NV * W;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[i][v] = V{} ;
  for (int64_t k = 0; k < kc; k++) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = *reinterpret_cast<const V*>(b + k * NR + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      T av = a[k * MR + i];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[i][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      T* cp = c + i * ldc + v * W;
      V cv;
      if (beta_zero) {
        cv = alpha * acc[i][v];
      } else {
        std::memcpy(&cv, cp, sizeof(V));
        cv = alpha * acc[i][v] + beta * cv;
      }
      std::memcpy(cp, &cv, sizeof(V));
    }
}

struct Tile {
  int64_t i0, rows, j0, cols;  // C block; j0 relative to the packed panel
};

// All MR x NR blocks of one tile. ap: packed A starting at the tile's first strip; bp: packed
// B starting at the tile's first strip. Partial edge blocks go through a scratch block.
template <typename T, int VB, int MR, int NV>
inline __attribute__((always_inline)) void macro_kernel(const Tile& t, int64_t kc, const T* ap,
                                                        const T* bp, T* C, int64_t ldc, T alpha,
                                                        T beta) {
  constexpr int NR = NV * (VB / int(sizeof(T)));
  alignas(64) T scratch[MR * NR];
  bool beta_zero = beta == T(0);
  for (int64_t jr = 0; jr < t.cols; jr += NR) {
    const T* b = bp + (jr / NR) * NR * kc;
    int64_t nr = std::min<int64_t>(NR, t.cols - jr);
    for (int64_t ir = 0; ir < t.rows; ir += MR) {
      const T* a = ap + (ir / MR) * MR * kc;
      int64_t mr = std::min<int64_t>(MR, t.rows - ir);
      T* c = C + (t.i0 + ir) * ldc + t.j0 + jr;
      if (mr == MR && nr == NR) {
        micro_kernel<T, VB, MR, NV>(kc, a, b, c, ldc, alpha, beta, beta_zero);
      } else {
        micro_kernel<T, VB, MR, NV>(kc, a, b, scratch, NR, T(1), T(0), true);
        for (int64_t i = 0; i < mr; i++)
          for (int64_t j = 0; j < nr; j++) {
            T& dst = c[i * ldc + j];
            dst = beta_zero ? alpha * scratch[i * NR + j] : alpha * scratch[i * NR + j] + beta * dst;
          }
      }
    }
  }
}

// Kernel shapes per ISA: (vector bytes, MR, vectors per row). Registers: MR*NV accumulators +
// NV loads + 1 broadcast <= 16 (SSE2, AVX2) or 32 (AVX-512).
#define LMDR_GEMM_VARIANT(NAME, TARGET, T, VB, MR, NV)                                       \
  __attribute__((target(TARGET), noinline)) void NAME(const Tile& t, int64_t kc, const T* ap, \
                                                      const T* bp, T* C, int64_t ldc, T alpha, \
                                                      T beta) {                              \
    macro_kernel<T, VB, MR, NV>(t, kc, ap, bp, C, ldc, alpha, beta);                         \
  }
LMDR_GEMM_VARIANT(tile_f32_avx512, "avx512f,avx2,fma", float, 64, 14, 2)
LMDR_GEMM_VARIANT(tile_f32_avx2, "avx2,fma", float, 32, 6, 2)
LMDR_GEMM_VARIANT(tile_f32_generic, "sse2", float, 16, 6, 2)
LMDR_GEMM_VARIANT(tile_f64_avx512, "avx512f,avx2,fma", double, 64, 14, 2)
LMDR_GEMM_VARIANT(tile_f64_avx2, "avx2,fma", double, 32, 6, 2)
LMDR_GEMM_VARIANT(tile_f64_generic, "sse2", double, 16, 6, 2)
#undef LMDR_GEMM_VARIANT

template <typename T>
using TileFn = void (*)(const Tile&, int64_t, const T*, const T*, T*, int64_t, T, T);

template <typename T> struct Kernel {
  TileFn<T> fn;
  int64_t mr, nr;
};

Kernel<float> kernel_for(float*) {
  switch (cpu_isa()) {
    case Isa::Avx512: return {tile_f32_avx512, 14, 32};
    case Isa::Avx2: return {tile_f32_avx2, 6, 16};
    default: return {tile_f32_generic, 6, 8};
  }
}
Kernel<double> kernel_for(double*) {
  switch (cpu_isa()) {
    case Isa::Avx512: return {tile_f64_avx512, 14, 16};
    case Isa::Avx2: return {tile_f64_avx2, 6, 8};
    default: return {tile_f64_generic, 6, 4};
  }
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <typename T> std::unique_ptr<T[], AlignedFree> aligned_buffer(int64_t n) {
  size_t bytes = (size_t(n) * sizeof(T) + 63) / 64 * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!p) throw Error("matmul: out of host memory for a " + std::to_string(bytes) + "-byte packing buffer");
  return std::unique_ptr<T[], AlignedFree>(p);
}

}  // namespace

template <typename T>
void matmul(T* C, const T* A, const T* B, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, T alpha, T beta) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // no product: C = beta * C
    for (int64_t i = 0; i < M * N; i++) C[i] = beta == T(0) ? T(0) : beta * C[i];
    return;
  }
  const Kernel<T> kern = kernel_for(static_cast<T*>(nullptr));
  const int64_t MR = kern.mr, NR = kern.nr;
  const int64_t kc_max = std::min(K, KC);
  const int64_t m_strips = (M + MR - 1) / MR;
  const int64_t nc_max = std::min(N, NC);
  auto ap = aligned_buffer<T>(m_strips * MR * kc_max);
  auto bp = aligned_buffer<T>((nc_max + NR - 1) / NR * NR * kc_max);
  const int threads = num_threads();
  // Row tiles of at most MC rows, evened out so the last one is not a sliver.
  const int64_t mc = ceil_div(ceil_div(M, ceil_div(M, MC)), MR) * MR;
  const int64_t m_tiles = ceil_div(M, mc);  // rounding mc up to MR may leave fewer tiles

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t n_strips = (nc + NR - 1) / NR;
    // Enough tiles to keep every thread busy even when M is small.
    const int64_t want_n_tiles = std::max<int64_t>(1, (4 * threads + m_tiles - 1) / m_tiles);
    const int64_t nt = std::max<int64_t>(1, (n_strips + want_n_tiles - 1) / want_n_tiles) * NR;
    const int64_t n_tiles = (nc + nt - 1) / nt;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const T beta_now = pc == 0 ? beta : T(1);
      T* bpp = bp.get();
      T* app = ap.get();
      const int64_t pack_grain = std::max<int64_t>(1, 4096 / kc);
      parallel_for(n_strips, pack_grain, [&](int64_t s0, int64_t s1) {
        pack_b(bpp, B, trans_b, N, K, jc, NR, s0, s1, pc, kc);
      });
      parallel_for(m_strips, pack_grain, [&](int64_t s0, int64_t s1) {
        pack_a(app, A, trans_a, M, K, 0, MR, s0, s1, pc, kc);
      });
      const int64_t flops_per_tile = mc * nt * kc;
      parallel_for(m_tiles * n_tiles, std::max<int64_t>(1, 65536 / flops_per_tile),
                   [&](int64_t t0, int64_t t1) {
        for (int64_t ti = t0; ti < t1; ti++) {
          int64_t mi = ti % m_tiles, ni = ti / m_tiles;
          Tile tile;
          tile.i0 = mi * mc;
          tile.rows = std::min(mc, M - tile.i0);
          tile.j0 = ni * nt;
          tile.cols = std::min(nt, nc - tile.j0);
          kern.fn(tile, kc, app + (tile.i0 / MR) * MR * kc, bpp + (tile.j0 / NR) * NR * kc,
                  C + jc, N, alpha, beta_now);
        }
      });
    }
  }
}

template void matmul<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, bool,
                            bool, float, float);
template void matmul<double>(double*, const double*, const double*, int64_t, int64_t, int64_t,
                             bool, bool, double, double);

}  // namespace lmdr::cpu
