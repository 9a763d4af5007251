// Fused retrieval loss: InfoNCE weighted with KL or stabilized distillation (the modes and their
// formulas: cpp/core/retrieval_loss.h), loss and gradients in one call, fp32 with double loss.
// s_ij = sim(q_i, p_j) / temperature, sim = cosine (F.normalize, eps 1e-12) or dot.
// G = dL/ds row by row (infonce_loss_kernel); dq_i = sum_j G_ij phat_j / t, projected through the
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

__device__ __forceinline__ float infonce_block_max(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  v = warp_max(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = -INFINITY;
    for (int w = 0; w < int(blockDim.x >> 5); w++) m = fmaxf(m, partial[w]);
    total = m;
  }
  __syncthreads();
  return total;
}

// Row b of S -> dL/dS in place (divided by B); parts[0] += contrastive_b / B, parts[1] +=
// distill_b / B. One block per row. rank/rank_of [B*G] (identity without distillation), w [B*G]
// teacher weights (data order; null without distillation), lse [B*G] scratch (stable mode).
__global__ void infonce_loss_kernel(float* S, double* parts, float* lse, const int32_t* rank, const int32_t* rank_of,
                                    const float* w, int64_t B, int64_t P, int64_t G, bool in_batch, int distill,
                                    float cw, float dw, float inv_ts) {
  const int64_t b = blockIdx.x, base = b * G;
  const int64_t lo = in_batch ? 0 : base, hi = in_batch ? P : base + G;
  float* row = S + b * P;
  float mx = -INFINITY;
  for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = infonce_block_max(mx);
  // logsumexp over the allowed columns outside ranks 0..skip-1 of the own group
  auto lse_from = [&](int64_t skip) {
    float sum = 0.f;
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
      bool own = j >= base && j < base + G;
      if (own && rank_of[j] < skip) continue;
      sum += expf(row[j] - mx);
    }
    return mx + logf(block_sum(sum));
  };
  const float lse_c = lse_from(0);
  const int64_t t0 = base + rank[base];
  double contrastive = double(lse_c) - double(row[t0]), dist = 0;
  __shared__ float lse_kl;
  if (distill == 2) {
    for (int64_t i = 0; i < G; i++) {
      float l = lse_from(i);
      if (threadIdx.x == 0) {
        lse[base + i] = l;
        dist += double(w[base + rank[base + i]]) * (double(l) - double(row[base + rank[base + i]]));
      }
    }
  } else if (distill == 1 && threadIdx.x == 0) {
    float m = -INFINITY, sum = 0.f;
    for (int64_t k = 0; k < G; k++) m = fmaxf(m, row[base + k] * inv_ts);
    for (int64_t k = 0; k < G; k++) sum += expf(row[base + k] * inv_ts - m);
    lse_kl = m + logf(sum);
    for (int64_t k = 0; k < G; k++) {
      float wk = w[base + k];
      if (wk > 0.f) dist += double(wk) * (log(double(wk)) - (double(row[base + k]) * inv_ts - lse_kl));
    }
  }
  __syncthreads();  // every target score and lse is read before the row is overwritten
  const float invB = 1.f / float(B);
  for (int64_t j = threadIdx.x; j < P; j += blockDim.x) {
    const float s = row[j];
    const bool allowed = j >= lo && j < hi, own = j >= base && j < base + G;
    float g = 0.f;
    if (allowed) g += cw * expf(s - lse_c);
    if (j == t0) g -= cw;
    if (distill == 1 && own) g += dw * (expf(s * inv_ts - lse_kl) - w[j]) * inv_ts;
    if (distill == 2 && allowed) {
      const int64_t r = own ? rank_of[j] : G - 1;  // ranks 0..r leave column j unmasked
      for (int64_t i = 0; i <= r; i++) g += dw * w[base + rank[base + i]] * expf(s - lse[base + i]);
      if (own) g -= dw * w[j];
    }
    row[j] = g * invB;
  }
  if (threadIdx.x == 0) {
    atomicAdd(parts, contrastive / double(B));
    atomicAdd(parts + 1, dist / double(B));
  }
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

int64_t infonce_workspace_floats(int64_t B, int64_t P) { return B * P + B + P + P; }

void infonce_forward_backward(float* dq, float* dp, double* parts, const float* q, const float* p, int64_t B,
                              int64_t P, int64_t H, int64_t group, float temperature, bool cosine, bool in_batch,
                              int distill, float contrastive_weight, float distill_weight, float student_temperature,
                              const int32_t* rank, const int32_t* rank_of, const float* teacher_weight,
                              float* workspace, cudaStream_t s) {
  LMDR_CUDA_CHECK(cudaMemsetAsync(parts, 0, 2 * sizeof(double), s));
  if (B <= 0) return;
  float* S = workspace;
  float* inv_q = S + B * P;
  float* inv_p = inv_q + B;
  float* lse = inv_p + P;
  float inv_t = 1.f / temperature;
  infonce_inv_norm_kernel<<<unsigned(B), 256, 0, s>>>(inv_q, q, H, cosine);
  LMDR_LAUNCH_CHECK("infonce_inv_norm_kernel");
  infonce_inv_norm_kernel<<<unsigned(P), 256, 0, s>>>(inv_p, p, H, cosine);
  LMDR_LAUNCH_CHECK("infonce_inv_norm_kernel");
  infonce_scores_kernel<<<unsigned(ceil_div(B * P * 32, 256)), 256, 0, s>>>(S, q, p, inv_q, inv_p, B, P, H, inv_t);
  LMDR_LAUNCH_CHECK("infonce_scores_kernel");
  infonce_loss_kernel<<<unsigned(B), 256, 0, s>>>(S, parts, lse, rank, rank_of, teacher_weight, B, P, group, in_batch,
                                                  distill, contrastive_weight, distill_weight, 1.f / student_temperature);
  LMDR_LAUNCH_CHECK("infonce_loss_kernel");
  infonce_grad_kernel<<<unsigned(B), 256, 0, s>>>(dq, q, inv_q, S, p, inv_p, P, P, H, inv_t, true, cosine);
  LMDR_LAUNCH_CHECK("infonce_grad_kernel");
  infonce_grad_kernel<<<unsigned(P), 256, 0, s>>>(dp, p, inv_p, S, q, inv_q, B, P, H, inv_t, false, cosine);
  LMDR_LAUNCH_CHECK("infonce_grad_kernel");
}

}  // namespace lmdr::cuda
