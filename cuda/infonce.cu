// Fused contrastive InfoNCE: loss and gradients in one call, fp32 with a double loss.
// s_ij = sim(q_i, p_j) / temperature, sim = cosine (F.normalize, eps 1e-12) or dot;
// loss = mean_i [logsumexp_j s_ij - s_i,target], target = i * group.
// G = dL/ds = (softmax(s) - onehot) / B; dq_i = sum_j G_ij phat_j / t, projected through the
// normalisation when cosine: dq = (g - qhat (qhat . g)) / max(||q||, eps); likewise dp.
#include "ops.cuh"

namespace lmdr::cuda {

// ---- kernels ----

// inv[r] = 1 / max(||x_r||, 1e-12) (cosine) or 1 (dot); one block per row
__global__ void infonce_inv_norm_kernel(float* inv, const float* x, int64_t H, bool cosine) {
  int64_t r = blockIdx.x;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) ss += x[r * H + j] * x[r * H + j];
  ss = block_sum(ss);
  if (threadIdx.x == 0) inv[r] = cosine ? 1.f / fmaxf(sqrtf(ss), 1e-12f) : 1.f;
}

// S[B,P] = (q_i . p_j) * inv_q[i] * inv_p[j] / t; one warp per (i, j)
__global__ void infonce_scores_kernel(float* S, const float* q, const float* p, const float* inv_q,
                                      const float* inv_p, int64_t B, int64_t P, int64_t H, float inv_t) {
  int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (w >= B * P) return;
  int64_t i = w / P, j = w - i * P;
  float s = 0.f;
  for (int64_t d = lane; d < H; d += 32) s += q[i * H + d] * p[j * H + d];
  s = warp_sum(s);
  if (lane == 0) S[w] = s * inv_q[i] * inv_p[j] * inv_t;
}

// row i of S -> G in place; *loss += (lse_i - S[i, i*group]) / B. One block per row.
__global__ void infonce_softmax_kernel(float* S, double* loss, int64_t B, int64_t P, int64_t group) {
  int64_t i = blockIdx.x;
  float* row = S + i * P;
  __shared__ float s_max;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < P; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  __shared__ float partial[32];
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = mx;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int w = 0; w < int(blockDim.x >> 5); w++) m = fmaxf(m, partial[w]);
    s_max = m;
  }
  __syncthreads();
  mx = s_max;
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < P; j += blockDim.x) sum += expf(row[j] - mx);
  sum = block_sum(sum);
  float lse = mx + logf(sum);
  float target = row[i * group];
  __syncthreads();  // everyone has read the target score before it is overwritten
  for (int64_t j = threadIdx.x; j < P; j += blockDim.x)
    row[j] = (expf(row[j] - lse) - (j == i * group ? 1.f : 0.f)) / float(B);
  if (threadIdx.x == 0) atomicAdd(loss, (double(lse) - double(target)) / double(B));
}

// dx[r] for r < R: g = sum_c G(r, c) * y_c * inv_y[c] * inv_t, then the normalisation's
// backward. by_row: G(r, c) = G[r, c] (queries, c over P); else G[c, r] (passages, c over B).
__global__ void infonce_grad_kernel(float* dx, const float* x, const float* inv_x, const float* G, const float* y,
                                    const float* inv_y, int64_t C, int64_t P, int64_t H, float inv_t, bool by_row,
                                    bool cosine) {
  int64_t r = blockIdx.x;
  float dot = 0.f;
  for (int64_t d = threadIdx.x; d < H; d += blockDim.x) {
    float g = 0.f;
    for (int64_t c = 0; c < C; c++) {
      float gc = by_row ? G[r * P + c] : G[c * P + r];
      g += gc * y[c * H + d] * inv_y[c];
    }
    g *= inv_t;
    dx[r * H + d] = g;
    dot += g * x[r * H + d] * inv_x[r];
  }
  if (!cosine) return;  // dot similarity: no normalisation to go through (inv_x == 1)
  dot = block_sum(dot);
  for (int64_t d = threadIdx.x; d < H; d += blockDim.x)
    dx[r * H + d] = inv_x[r] * (dx[r * H + d] - x[r * H + d] * inv_x[r] * dot);
}

// ---- launchers ----

int64_t infonce_workspace_floats(int64_t B, int64_t P) { return B * P + B + P; }

void infonce_forward_backward(float* dq, float* dp, double* loss, const float* q, const float* p, int64_t B,
                              int64_t P, int64_t H, int64_t group, float temperature, bool cosine, float* workspace,
                              cudaStream_t s) {
  LMDR_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(double), s));
  if (B <= 0) return;
  float* S = workspace;
  float* inv_q = S + B * P;
  float* inv_p = inv_q + B;
  float inv_t = 1.f / temperature;
  infonce_inv_norm_kernel<<<unsigned(B), 256, 0, s>>>(inv_q, q, H, cosine);
  LMDR_LAUNCH_CHECK("infonce_inv_norm_kernel");
  infonce_inv_norm_kernel<<<unsigned(P), 256, 0, s>>>(inv_p, p, H, cosine);
  LMDR_LAUNCH_CHECK("infonce_inv_norm_kernel");
  infonce_scores_kernel<<<unsigned(ceil_div(B * P * 32, 256)), 256, 0, s>>>(S, q, p, inv_q, inv_p, B, P, H, inv_t);
  LMDR_LAUNCH_CHECK("infonce_scores_kernel");
  infonce_softmax_kernel<<<unsigned(B), 256, 0, s>>>(S, loss, B, P, group);
  LMDR_LAUNCH_CHECK("infonce_softmax_kernel");
  infonce_grad_kernel<<<unsigned(B), 256, 0, s>>>(dq, q, inv_q, S, p, inv_p, P, P, H, inv_t, true, cosine);
  LMDR_LAUNCH_CHECK("infonce_grad_kernel");
  infonce_grad_kernel<<<unsigned(P), 256, 0, s>>>(dp, p, inv_p, S, q, inv_q, B, P, H, inv_t, false, cosine);
  LMDR_LAUNCH_CHECK("infonce_grad_kernel");
}

}  // namespace lmdr::cuda
