// Rotary position embedding, rotate-half convention (Hugging Face), in place.
// angle_i = float32(pos) * float32(inv_freq_i) as HF computes it; inv_freq arrives from the
// host already llama3-scaled. The backward pass is the inverse rotation (angle -> -angle).
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// x[T, n_heads, D]; positions[T]; inv_freq[half]; one thread per (t, head, i < half); dims
// >= 2*half of each head pass through (partial rotary)
__global__ void rope_kernel(void* x, DType xt, const int32_t* positions, const float* inv_freq, int64_t T,
                            int64_t n_heads, int64_t D, int64_t half, float direction) {
  const int64_t n = T * n_heads * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = idx % half;
    int64_t th = idx / half;  // t * n_heads + head
    int64_t t = th / n_heads;
    float angle = float(positions[t]) * inv_freq[i];  // one fp32 rounding, like HF
    float s, c;
    sincosf(angle, &s, &c);
    s *= direction;
    int64_t a = th * D + i, b = a + half;
    float x1 = load_f(x, xt, a), x2 = load_f(x, xt, b);
    store_f(x, xt, a, x1 * c - x2 * s);
    store_f(x, xt, b, x2 * c + x1 * s);
  }
}

// ---- launchers ----

void rope_forward(void* x, DType xt, const int32_t* positions, const float* inv_freq, int64_t T, int64_t n_heads,
                  int64_t D, int64_t half, cudaStream_t stream) {
  int64_t n = T * n_heads * half;
  if (n <= 0) return;
  rope_kernel<<<grid_for(n), 256, 0, stream>>>(x, xt, positions, inv_freq, T, n_heads, D, half, 1.f);
  LMDR_LAUNCH_CHECK("rope_kernel");
}

void rope_backward(void* dx, DType xt, const int32_t* positions, const float* inv_freq, int64_t T, int64_t n_heads,
                   int64_t D, int64_t half, cudaStream_t stream) {
  int64_t n = T * n_heads * half;
  if (n <= 0) return;
  rope_kernel<<<grid_for(n), 256, 0, stream>>>(dx, xt, positions, inv_freq, T, n_heads, D, half, -1.f);
  LMDR_LAUNCH_CHECK("rope_kernel");
}

}  // namespace lmdr::cuda
