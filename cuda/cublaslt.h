// cuBLASLt, loaded at run time with dlopen so that building lmdr and running it on CPU-only
// machines needs no cuBLAS. Only the handful of types and functions lmdr uses are declared
// here, with the values of the public cublasLt.h / library_types.h API.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace lmdr::cuda {

// Row-major GEMM: C[M,N] = alpha * op(A) @ op(B) + beta * C, fp32 accumulation.
// A is [M,K] ([K,M] when trans_a), B is [K,N] ([N,K] when trans_b). Supported dtype sets
// (a, b, c): all BF16, all F16, all F32, and BF16/BF16 -> F32 (gradients accumulated in fp32).
// lda/ldb/ldc are the row strides in elements (the last dim for contiguous tensors).
struct GemmArgs {
  void* C;
  const void* A;
  const void* B;
  int a_type, b_type, c_type;  // cudaDataType values: CUDA_R_32F 0, CUDA_R_16F 2, CUDA_R_16BF 14
  int64_t M, N, K;
  int64_t lda, ldb, ldc;
  bool trans_a, trans_b;
  float alpha, beta;
};

class CublasLt {
 public:
  // Loads the library (once per process) and creates a handle for the current device.
  // Throws lmdr::Error naming libcublasLt.so and every place it looked when missing.
  CublasLt();
  ~CublasLt();
  CublasLt(const CublasLt&) = delete;
  CublasLt& operator=(const CublasLt&) = delete;

  void gemm(const GemmArgs& g, void* workspace, size_t workspace_bytes, cudaStream_t stream);
  static const std::string& library_path();  // the file that was loaded ("" before)

 private:
  void* handle_ = nullptr;
};

}  // namespace lmdr::cuda
