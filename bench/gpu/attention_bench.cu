// Standalone timing of lmdr's attention kernels (cuda/attention.cu) without the addon:
// packed batches of B = 16384/L sequences of length L, Qwen2.5-0.5B heads (14 query, 2 kv,
// head dim 64 by default), bf16. Prints one JSON line: TFLOP/s per length, forward and
// backward, causal (FLOPs counted for the visible half) and bidirectional.
// Built and run by bench/gpu/attention.ts:
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -arch=native -Icpp \
//        bench/gpu/attention_bench.cu cuda/attention.cu -o attention_bench
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../cuda/ops.cuh"

namespace lmdr::cuda {  // the three error helpers cuda_backend.cu normally provides
const char* current_op() { return "attention_bench"; }
void throw_cuda_error(const char* call, cudaError_t err, const char*, int line) {
  std::fprintf(stderr, "%s failed: %s (line %d)\n", call, cudaGetErrorString(err), line);
  std::exit(1);
}
void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(kernel, err, file, line);
}
}  // namespace lmdr::cuda

using namespace lmdr;
using namespace lmdr::cuda;

__global__ void fill_random(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    x[i] = __float2bfloat16(float(h & 0xffff) / 32768.f - 1.f);
  }
}

int main(int argc, char** argv) {
  int Hq = 14, Hkv = 2, D = 64;
  std::vector<int> lengths = {256, 1024, 8192};
  if (argc > 1) D = std::atoi(argv[1]);
  const int64_t tokens = 16384;
  __nv_bfloat16 *q, *k, *v, *o, *dout, *dq, *dk, *dv;
  float *lse, *delta;
  int32_t* cu;
  size_t nq = size_t(tokens) * Hq * D, nk = size_t(tokens) * Hkv * D;
  LMDR_CUDA_CHECK(cudaMalloc(&q, nq * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&o, nq * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&dout, nq * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&dq, nq * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&k, nk * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&v, nk * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&dk, nk * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&dv, nk * 2));
  LMDR_CUDA_CHECK(cudaMalloc(&lse, size_t(tokens) * Hq * 4));
  LMDR_CUDA_CHECK(cudaMalloc(&delta, size_t(tokens) * Hq * 4));
  LMDR_CUDA_CHECK(cudaMalloc(&cu, (tokens + 1) * 4));
  fill_random<<<1024, 256>>>(q, nq, 1);
  fill_random<<<1024, 256>>>(k, nk, 2);
  fill_random<<<1024, 256>>>(v, nk, 3);
  fill_random<<<1024, 256>>>(dout, nq, 4);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::string json = "{\"device\":\"";
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  json += std::string(prop.name) + "\",\"heads\":" + std::to_string(Hq) + ",\"kv_heads\":" + std::to_string(Hkv) +
          ",\"head_dim\":" + std::to_string(D) + ",\"tflops\":{";
  bool first = true;
  for (int L : lengths) {
    int64_t B = tokens / L;
    std::vector<int32_t> h_cu(B + 1);
    for (int64_t b = 0; b <= B; b++) h_cu[b] = int32_t(b * L);
    LMDR_CUDA_CHECK(cudaMemcpy(cu, h_cu.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    for (bool causal : {true, false}) {
      float scale = 1.f / std::sqrt(float(D));
      double flops = 4.0 * B * Hq * double(L) * L * D * (causal ? 0.5 : 1.0);
      auto fwd = [&] {
        attention_forward(o, lse, q, k, v, DType::BF16, cu, B, L, tokens, Hq, Hkv, D, causal, scale, /*softcap*/ 0.0,
                          /*window*/ 0, /*stream*/ 0);
      };
      auto bwd = [&] {
        attention_backward(dq, dk, dv, delta, dout, q, k, v, o, lse, DType::BF16, cu, B, L, tokens, Hq, Hkv, D, causal,
                           scale, /*softcap*/ 0.0, /*window*/ 0, /*stream*/ 0);
      };
      float ms_f = 0, ms_b = 0;
      const int reps = 5;
      fwd();
      cudaEventRecord(e0);
      for (int r = 0; r < reps; r++) fwd();
      cudaEventRecord(e1);
      LMDR_CUDA_CHECK(cudaEventSynchronize(e1));
      cudaEventElapsedTime(&ms_f, e0, e1);
      bwd();
      cudaEventRecord(e0);
      for (int r = 0; r < reps; r++) bwd();
      cudaEventRecord(e1);
      LMDR_CUDA_CHECK(cudaEventSynchronize(e1));
      cudaEventElapsedTime(&ms_b, e0, e1);
      double tf = flops / (ms_f / reps * 1e-3) / 1e12;
      double tb = 2.5 * flops / (ms_b / reps * 1e-3) / 1e12;  // backward = 2.5x the forward's FLOPs (FA2 convention)
      json += std::string(first ? "" : ",") + "\"" + std::to_string(L) + (causal ? "_causal" : "") +
              "\":{\"forward\":" + std::to_string(tf) + ",\"backward\":" + std::to_string(tb) + "}";
      first = false;
    }
  }
  json += "}}";
  std::printf("%s\n", json.c_str());
  return 0;
}
