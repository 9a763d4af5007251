// Embedding gather (forward) and scatter-add (backward). ids are validated by the core.
#include "column_reduce.cuh"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// out[T,H] (= or +=) table[V,H][ids[t]]
__global__ void embedding_forward_kernel(void* out, DType ot, const void* table, DType tt, const int32_t* ids,
                                         int64_t T, int64_t H, bool accumulate) {
  const int64_t n = T * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i / H, j = i - t * H;
    float v = load_f(table, tt, int64_t(ids[t]) * H + j);
    if (accumulate) v += load_f(out, ot, i);
    store_f(out, ot, i, v);
  }
}

// dtable[ids[t], :] += dout[t, :] (atomics: a token id may repeat)
__global__ void embedding_backward_kernel(void* dtable, DType dtt, const void* dout, DType dt, const int32_t* ids,
                                          int64_t T, int64_t H) {
  const int64_t n = T * H;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = i / H, j = i - t * H;
    atomic_add_f(dtable, dtt, int64_t(ids[t]) * H + j, load_f(dout, dt, i));
  }
}

// ---- launchers ----

void embedding_forward(void* out, DType ot, const void* table, DType tt, const int32_t* ids, int64_t T, int64_t H,
                       bool accumulate, cudaStream_t stream) {
  if (T * H <= 0) return;
  embedding_forward_kernel<<<grid_for(T * H), 256, 0, stream>>>(out, ot, table, tt, ids, T, H, accumulate);
  LMDR_LAUNCH_CHECK("embedding_forward_kernel");
}

void embedding_backward(void* dtable, DType dtt, const void* dout, DType dt, const int32_t* ids, int64_t T,
                        int64_t H, cudaStream_t stream) {
  if (T * H <= 0) return;
  embedding_backward_kernel<<<grid_for(T * H), 256, 0, stream>>>(dtable, dtt, dout, dt, ids, T, H);
  LMDR_LAUNCH_CHECK("embedding_backward_kernel");
}

}  // namespace lmdr::cuda
