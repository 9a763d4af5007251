// Stands in for cuda/cublaslt.cu in the emulated build: the same GemmArgs contract (row-major
// C = alpha op(A) op(B) + beta C), computed by a plain loop in double on host memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "../../../cuda/cublaslt.h"

namespace lmdr::cuda {

namespace {
double load(const void* p, int type, int64_t i) {
  switch (type) {
    case 14: return double(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
    case 2: return double(__half2float(static_cast<const __half*>(p)[i]));
    default: return double(static_cast<const float*>(p)[i]);
  }
}
void store(void* p, int type, int64_t i, double v) {
  switch (type) {
    case 14: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v)); break;
    case 2: static_cast<__half*>(p)[i] = __float2half(float(v)); break;
    default: static_cast<float*>(p)[i] = float(v); break;
  }
}
const std::string kPath = "(emulated cuBLASLt)";
}  // namespace

CublasLt::CublasLt() {}
CublasLt::~CublasLt() {}
const std::string& CublasLt::library_path() { return kPath; }

void CublasLt::gemm(const GemmArgs& g, void*, size_t, cudaStream_t) {
  for (int64_t m = 0; m < g.M; m++)
    for (int64_t n = 0; n < g.N; n++) {
      double s = 0;
      for (int64_t k = 0; k < g.K; k++) {
        double a = load(g.A, g.a_type, g.trans_a ? k * g.lda + m : m * g.lda + k);
        double b = load(g.B, g.b_type, g.trans_b ? n * g.ldb + k : k * g.ldb + n);
        s += a * b;
      }
      double c = g.beta != 0.f ? double(g.beta) * load(g.C, g.c_type, m * g.ldc + n) : 0.0;
      store(g.C, g.c_type, m * g.ldc + n, double(g.alpha) * s + c);
    }
}

}  // namespace lmdr::cuda
