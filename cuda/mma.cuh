// Tensor-core matrix multiply-accumulate on register fragments (sm_80+): one warp computes
// C[16x8] += A[16x16] B[16x8] with bf16 inputs and fp32 accumulators (mma.sync m16n8k16).
// Fragment layouts, lane = 4g + t (g = lane / 4, t = lane % 4); a 32-bit register holds two
// bf16, the lower column (or k) index in the low half:
//   A (row-major):  a0 = A[g][2t..2t+1]   a1 = A[g+8][2t..2t+1]   a2 = A[g][2t+8..2t+9]   a3 = A[g+8][2t+8..2t+9]
//   B (k x n):      b0 = B[2t..2t+1][g]   b1 = B[2t+8..2t+9][g]
//   C (fp32):       c0, c1 = C[g][2t], C[g][2t+1]     c2, c3 = C[g+8][2t], C[g+8][2t+1]
// The SIMT emulator (test/gpu/emu/cuda_emu.h) provides the same function with these semantics.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace lmdr::cuda {

#ifndef LMDR_CUDA_EMU
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#else
using ::mma_bf16_16816;
#endif

// two floats -> one register of two bf16 (round to nearest even), lo in the low half
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const uint32_t l = __bfloat16_as_ushort(__float2bfloat16(lo)), h = __bfloat16_as_ushort(__float2bfloat16(hi));
  return l | (h << 16);
}

}  // namespace lmdr::cuda
