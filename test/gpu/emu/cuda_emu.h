// A small SIMT emulator so lmdr's CUDA kernels can run (slowly) on a machine without a GPU.
// build.mjs compiles every cuda/*.cu as host C++ with this header forced in front, after
// rewriting `k<<<cfg>>>(args)` into emu::launch(cfg, [&] { k(args); }) and `extern __shared__`
// arrays into the block's dynamic shared buffer. Each CUDA thread is a fiber (ucontext); a
// block's fibers run round-robin on one OS thread and switch only at __syncthreads and warp
// shuffles, so barriers, shuffles and shared memory behave like the hardware's for code that
// is race-free. A barrier that can never complete (divergent __syncthreads, a warp waiting
// for an exited lane's partner ...) is reported as a deadlock instead of hanging. Not part of
// the library build: test/gpu/emu/build.mjs makes build-emu/lmdr.node for the GPU tests.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <type_traits>

// Device-code keywords become plain C++: shared variables are statics (one block runs at a time).
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace emu {

struct ThreadState {
  uint3 tid;
};
extern ThreadState* current;
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;

void launch_impl(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
template <typename F>
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t, F&& body) {
  launch_impl(grid, block, smem, std::function<void()>(body));
}
unsigned char* dyn_smem();
void sync_block();
uint64_t shfl_bits(uint64_t bits, int src_lane);  // exchange within the warp; returns src's bits
int lane();
void sync_warp();  // __syncwarp: all live lanes of the warp meet
// every lane passes n words; all = the 32 lanes' words, lane-major ([32][n])
void warp_gather(const uint32_t* mine, int n, uint32_t* all);

template <typename T>
T shfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shfl_bits(bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace emu

#define threadIdx (::emu::current->tid)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

inline void __syncthreads() { emu::sync_block(); }
template <typename T> T __shfl_sync(unsigned, T v, int src, int = 32) { return emu::shfl(v, src); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int mask, int = 32) { return emu::shfl(v, emu::lane() ^ mask); }
template <typename T> T __shfl_up_sync(unsigned, T v, unsigned d, int = 32) {
  int l = emu::lane();
  return emu::shfl(v, l >= int(d) ? l - int(d) : l);
}

// Atomics: fibers never interleave inside an operation, so plain read-modify-write is atomic.
inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { double o = *p; *p = o + v; return o; }
inline int atomicAdd(int* p, int v) { int o = *p; *p = o + v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  __nv_bfloat16 o = *p;
  *p = __float2bfloat16(__bfloat162float(o) + __bfloat162float(v));
  return o;
}

inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// cuda_runtime.h declares this C++ overload for nvcc only
template <typename T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

inline void __syncwarp(unsigned = 0xffffffffu) { emu::sync_warp(); }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float to_float(__half x) { return __half2float(x); }

// mma.sync m16n8k16 bf16 -> fp32 (cuda/mma.cuh gives the fragment layouts): every lane gathers
// the whole A and B tiles from the warp's fragments and computes its four C elements.
#define LMDR_CUDA_EMU 1
inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
  uint32_t all[32][6];
  emu::warp_gather(mine, 6, &all[0][0]);
  float A[16][16], B[16][8];
  auto half = [](uint32_t u, int hi) { return __uint_as_float(hi ? (u & 0xffff0000u) : (u << 16)); };
  for (int src = 0; src < 32; src++) {
    const uint32_t* r = all[src];
    const int g = src >> 2, t = src & 3;
    for (int e = 0; e < 2; e++) {
      A[g][2 * t + e] = half(r[0], e);
      A[g + 8][2 * t + e] = half(r[1], e);
      A[g][2 * t + 8 + e] = half(r[2], e);
      A[g + 8][2 * t + 8 + e] = half(r[3], e);
      B[2 * t + e][g] = half(r[4], e);
      B[2 * t + 8 + e][g] = half(r[5], e);
    }
  }
  const int g = emu::lane() >> 2, t = emu::lane() & 3;
  for (int j = 0; j < 4; j++) {
    const int row = g + (j >= 2 ? 8 : 0), col = 2 * t + (j & 1);
    float acc = c[j];
    for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
    c[j] = acc;
  }
}

// nvcuda::wmma for 16x16x16 tiles. Every lane holds the whole tile (the hardware spreads it
// over the warp in an unspecified layout), which gives the same results for kernels that only
// move fragments through load/store/mma/fill; it also checks the alignment rules (256-bit
// pointers, ldm a multiple of 16 bytes) that the hardware would otherwise punish.
namespace nvcuda::wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator knows 16x16x16 tiles only");
  float v[16][16];
  static constexpr int num_elements = 256;
};

inline void check_ptr(const void* p, unsigned ldm, size_t elem) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) throw std::runtime_error("wmma: pointer not 256-bit aligned");
  if ((ldm * elem) % 16 != 0) throw std::runtime_error("wmma: ldm not a multiple of 16 bytes");
}

template <typename Use, typename T, typename Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float x) {
  for (auto& row : f.v)
    for (float& e : row) e = x;
}

template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  check_ptr(p, ldm, sizeof(T));
  constexpr bool row = std::is_same<Layout, row_major>::value;
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) f.v[i][j] = to_float(row ? p[i * ldm + j] : p[i + j * ldm]);
  emu::sync_warp();
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4);
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) f.v[i][j] = l == mem_row_major ? p[i * ldm + j] : p[i + j * ldm];
  emu::sync_warp();
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  check_ptr(p, ldm, 4);
  emu::sync_warp();
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) (l == mem_row_major ? p[i * ldm + j] : p[i + j * ldm]) = f.v[i][j];
  emu::sync_warp();
}

// d = a b + c; a is row i, col k; b is row k, col j (whatever the memory layouts were)
template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float r[16][16];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) {
      float s = c.v[i][j];
      for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][j];
      r[i][j] = s;
    }
  std::memcpy(d.v, r, sizeof(r));
  emu::sync_warp();
}
}  // namespace nvcuda::wmma
