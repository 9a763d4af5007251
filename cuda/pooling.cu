// Sequence pooling (eos = last token, cls = first, mean) with optional fused L2
// normalisation (torch.nn.functional.normalize: x / max(||x||, 1e-12)), its backward, and the
// standalone row normalisation.
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

__device__ __forceinline__ float pooled_value(const void* h, DType ht, int64_t H, int32_t begin, int32_t end,
                                              int mode, int64_t j) {
  if (end <= begin) return 0.f;
  if (mode == 0) return load_f(h, ht, int64_t(end - 1) * H + j);  // eos
  if (mode == 1) return load_f(h, ht, int64_t(begin) * H + j);    // cls
  float s = 0.f;
  for (int32_t t = begin; t < end; t++) s += load_f(h, ht, int64_t(t) * H + j);
  return s / float(end - begin);
}

// one block per sequence; out[B,H], h[T,H], cu_seqlens[B+1] (device)
__global__ void pool_forward_kernel(void* out, DType ot, const void* h, DType ht, const int32_t* cu_seqlens,
                                    int64_t H, int mode, bool normalize) {
  int64_t b = blockIdx.x;
  int32_t begin = cu_seqlens[b], end = cu_seqlens[b + 1];
  float inv = 1.f;
  if (normalize) {
    float ss = 0.f;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
      float v = pooled_value(h, ht, H, begin, end, mode, j);
      ss += v * v;
    }
    inv = 1.f / fmaxf(sqrtf(block_sum(ss)), 1e-12f);
  }
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x)
    store_f(out, ot, b * H + j, pooled_value(h, ht, H, begin, end, mode, j) * inv);
}

// dh[T,H] overwritten: dout routed back to the pooled rows, zero elsewhere
__global__ void pool_backward_kernel(void* dh, DType dht, const void* dout, DType dt, const int32_t* cu_seqlens,
                                     int64_t B, int64_t T, int64_t H, int mode) {
  const int64_t n = T * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i / H, j = i - t * H;
    int64_t lo = 0, hi = B;  // find b with cu[b] <= t < cu[b+1]
    while (hi - lo > 1) {
      int64_t mid = (lo + hi) / 2;
      if (cu_seqlens[mid] <= t) lo = mid; else hi = mid;
    }
    int32_t begin = cu_seqlens[lo], end = cu_seqlens[lo + 1];
    float g = 0.f;
    if (t >= begin && t < end) {
      float d = load_f(dout, dt, lo * H + j);
      if (mode == 0) g = t == end - 1 ? d : 0.f;
      else if (mode == 1) g = t == begin ? d : 0.f;
      else g = d / float(end - begin);
    }
    store_f(dh, dht, i, g);
  }
}

// one block per row; y[R,H] = x / max(||x||, 1e-12) (y may alias x)
__global__ void l2normalize_kernel(void* y, DType yt, const void* x, DType xt, int64_t H) {
  int64_t r = blockIdx.x;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float v = load_f(x, xt, r * H + j);
    ss += v * v;
  }
  float inv = 1.f / fmaxf(sqrtf(block_sum(ss)), 1e-12f);
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) store_f(y, yt, r * H + j, load_f(x, xt, r * H + j) * inv);
}

// ---- launchers ----

void pool_forward(void* out, DType ot, const void* h, DType ht, const int32_t* cu_seqlens, int64_t B, int64_t H,
                  int mode, bool normalize, cudaStream_t stream) {
  if (B <= 0) return;
  pool_forward_kernel<<<unsigned(B), 256, 0, stream>>>(out, ot, h, ht, cu_seqlens, H, mode, normalize);
  LMDR_LAUNCH_CHECK("pool_forward_kernel");
}

void pool_backward(void* dh, DType dht, const void* dout, DType dt, const int32_t* cu_seqlens, int64_t B, int64_t T,
                   int64_t H, int mode, cudaStream_t stream) {
  if (T * H <= 0 || B <= 0) return;
  pool_backward_kernel<<<grid_for(T * H), 256, 0, stream>>>(dh, dht, dout, dt, cu_seqlens, B, T, H, mode);
  LMDR_LAUNCH_CHECK("pool_backward_kernel");
}

void l2normalize_forward(void* y, DType yt, const void* x, DType xt, int64_t R, int64_t H, cudaStream_t stream) {
  if (R <= 0) return;
  l2normalize_kernel<<<unsigned(R), 256, 0, stream>>>(y, yt, x, xt, H);
  LMDR_LAUNCH_CHECK("l2normalize_kernel");
}

}  // namespace lmdr::cuda
