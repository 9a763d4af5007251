// A stand-in libcublasLt.so for the emulated build: the 13 functions lmdr resolves with dlsym,
// with cuBLASLt's column-major semantics (D = alpha op(A) op(B) + beta C, element (r, c) of a
// matrix at r + c * ld). Loading it through LMDR_CUBLASLT exercises cuda/cublaslt.cu for real:
// the library search, the symbol table and the row-major -> column-major operand swap.
// Shapes that do not chain are refused with CUBLAS_STATUS_INVALID_VALUE (7), as cuBLASLt does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace {
struct Desc { int compute, scale, transa = 0, transb = 0; };
struct Layout { int type; uint64_t rows, cols; int64_t ld; };
struct Heuristic { uint64_t algo[8]; size_t workspace; int state; float waves; int reserved[4]; };

double load(const void* p, int type, int64_t i) {
  switch (type) {
    case 14: return double(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
    case 2: return double(__half2float(static_cast<const __half*>(p)[i]));
    case 0: return double(static_cast<const float*>(p)[i]);
  }
  return 0;
}
void store(void* p, int type, int64_t i, double v) {
  switch (type) {
    case 14: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(float(v)); break;
    case 2: static_cast<__half*>(p)[i] = __float2half(float(v)); break;
    case 0: static_cast<float*>(p)[i] = float(v); break;
  }
}
}  // namespace

extern "C" {
int cublasLtCreate(void** h) { *h = reinterpret_cast<void*>(0x1); return 0; }
int cublasLtDestroy(void*) { return 0; }
size_t cublasLtGetVersion() { return 130000; }
int cublasLtMatmulDescCreate(void** d, int compute, int scale) {
  if (compute != 68 || scale != 0) return 15;  // lmdr asks for fp32 compute and scale only
  *d = new Desc{compute, scale};
  return 0;
}
int cublasLtMatmulDescDestroy(void* d) { delete static_cast<Desc*>(d); return 0; }
int cublasLtMatmulDescSetAttribute(void* d, int attr, const void* buf, size_t size) {
  if (size != sizeof(int)) return 7;
  if (attr == 3) std::memcpy(&static_cast<Desc*>(d)->transa, buf, 4);
  else if (attr == 4) std::memcpy(&static_cast<Desc*>(d)->transb, buf, 4);
  else return 7;
  return 0;
}
int cublasLtMatrixLayoutCreate(void** l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (ld < int64_t(rows)) return 7;  // column-major: ld >= rows
  *l = new Layout{type, rows, cols, ld};
  return 0;
}
int cublasLtMatrixLayoutDestroy(void* l) { delete static_cast<Layout*>(l); return 0; }
int cublasLtMatmulPreferenceCreate(void** p) { *p = new int(0); return 0; }
int cublasLtMatmulPreferenceDestroy(void* p) { delete static_cast<int*>(p); return 0; }
int cublasLtMatmulPreferenceSetAttribute(void*, int attr, const void*, size_t size) {
  if (attr == 1) return size == 8 ? 0 : 7;                    // max workspace: uint64_t
  if (attr >= 5 && attr <= 8) return size == 4 ? 0 : 7;       // min alignments: uint32_t
  return 7;
}
int cublasLtMatmulAlgoGetHeuristic(void*, void*, void*, void*, void*, void*, void*, int requested, Heuristic* out,
                                   int* returned) {
  if (requested < 1) return 7;
  std::memset(out, 0, sizeof(Heuristic));
  *returned = 1;
  return 0;
}
int cublasLtMatmul(void*, void* desc, const void* alpha, const void* A, void* Adesc, const void* B, void* Bdesc,
                   const void* beta, const void* C, void* Cdesc, void* D, void* Ddesc, const void*, void*, size_t,
                   void*) {
  const Desc& d = *static_cast<Desc*>(desc);
  const Layout &la = *static_cast<Layout*>(Adesc), &lb = *static_cast<Layout*>(Bdesc);
  const Layout &lc = *static_cast<Layout*>(Cdesc), &ld = *static_cast<Layout*>(Ddesc);
  uint64_t m = d.transa ? la.cols : la.rows, k = d.transa ? la.rows : la.cols;
  uint64_t kb = d.transb ? lb.cols : lb.rows, n = d.transb ? lb.rows : lb.cols;
  if (k != kb || ld.rows != m || ld.cols != n || lc.rows != m || lc.cols != n) return 7;
  float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  for (uint64_t c = 0; c < n; c++)
    for (uint64_t r = 0; r < m; r++) {
      double s = 0;
      for (uint64_t i = 0; i < k; i++) {
        double x = load(A, la.type, d.transa ? int64_t(i + r * la.ld) : int64_t(r + i * la.ld));
        double y = load(B, lb.type, d.transb ? int64_t(c + i * lb.ld) : int64_t(i + c * lb.ld));
        s += x * y;
      }
      double prev = b != 0.f ? double(b) * load(C, lc.type, int64_t(r + c * lc.ld)) : 0.0;
      store(D, ld.type, int64_t(r + c * ld.ld), double(a) * s + prev);
    }
  return 0;
}
}  // extern "C"
