// Causal-LM head, one vocabulary block at a time (cpu/lm_head.cpp is the reference): the
// block's logits, soft-capped in place when asked (Gemma 2), fold into a running log-sum-exp
// per row, and the target's logit is picked up when it lies in the block. fp32 math.
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// Max over the whole block (blockDim.x a multiple of 32); every thread gets it.
__device__ __forceinline__ float block_max(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float m = lane < int(blockDim.x >> 5) ? partial[lane] : -INFINITY;
    m = warp_max(m);
    if (lane == 0) total = m;
  }
  __syncthreads();
  return total;
}

// one block per row; logits[N,Vb], run_max/run_sum/target[N], targets[N]
__global__ void logits_block_kernel(void* logits, DType lt, float* run_max, float* run_sum, float* target,
                                    const int32_t* targets, int64_t Vb, int64_t v0, float softcap) {
  const int64_t row = blockIdx.x, base = row * Vb;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < Vb; j += blockDim.x) {
    float l = load_f(logits, lt, base + j);
    if (softcap > 0.f) {
      l = softcap * tanhf(l / softcap);
      store_f(logits, lt, base + j, l);
    }
    mx = fmaxf(mx, l);
  }
  mx = block_max(mx);
  const float old = run_max[row], m = fmaxf(old, mx);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < Vb; j += blockDim.x) sum += __expf(load_f(logits, lt, base + j) - m);
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    run_sum[row] = (old == -INFINITY ? 0.f : run_sum[row] * __expf(old - m)) + sum;
    run_max[row] = m;
    int64_t t = int64_t(targets[row]) - v0;
    if (t >= 0 && t < Vb) target[row] = load_f(logits, lt, base + t);
  }
}

// ---- launchers ----

void logits_block_update(void* logits, DType lt, float* run_max, float* run_sum, float* target, const int32_t* targets,
                         int64_t N, int64_t Vb, int64_t v0, float softcap, cudaStream_t stream) {
  if (N <= 0 || Vb <= 0) return;
  logits_block_kernel<<<unsigned(N), 256, 0, stream>>>(logits, lt, run_max, run_sum, target, targets, Vb, v0, softcap);
  LMDR_LAUNCH_CHECK("logits_block_kernel");
}

}  // namespace lmdr::cuda
