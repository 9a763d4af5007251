// The CUDA kernels' launchers, one section per file (llm.c style: raw device pointers, sizes
// and a stream; shapes in trailing comments; every launch checked). Float tensors may be F32,
// BF16 or F16 unless a comment says otherwise: each pointer comes with its DType, math is fp32.
// CudaBackend (cuda_backend.cu) is the only caller.
#pragma once
#include "common.cuh"

namespace lmdr::cuda {

// ---- elementwise.cu ----
void convert_forward(void* dst, DType dst_t, const void* src, DType src_t, int64_t n, cudaStream_t s);  // any dtypes
void fill_forward(void* dst, DType t, int64_t n, double value, cudaStream_t s);
void add_forward(void* out, DType ot, const void* a, DType at, const void* b, DType bt, int64_t n, cudaStream_t s);
void scale_forward(void* x, DType t, int64_t n, float scale, cudaStream_t s);
void axpy_forward(void* y, DType yt, float a, const void* x, DType xt, int64_t n, cudaStream_t s);
void add_bias_forward(void* y, DType yt, const void* bias, DType bt, int64_t T, int64_t N, cudaStream_t s);  // y[T,N] += bias[N]
void bias_backward(void* dbias, DType dbt, const void* dy, DType dyt, int64_t T, int64_t N, cudaStream_t s);  // dbias[N] += sum_t dy[T,N]
// dst[R, dst_col..+ncols] = src[R, src_col..+ncols]; row strides ldd, lds; one dtype t
void copy_columns(void* dst, int64_t ldd, int64_t dst_col, const void* src, int64_t lds, int64_t src_col, DType t,
                  int64_t R, int64_t ncols, cudaStream_t s);

// ---- lm_head.cu ---- logits[N,Vb] (capped in place when softcap > 0); run_max/run_sum/target[N] fp32;
// targets[N] int32 (device): one block of the vocabulary folded into a running log-sum-exp
void logits_block_update(void* logits, DType lt, float* run_max, float* run_sum, float* target, const int32_t* targets,
                         int64_t N, int64_t Vb, int64_t v0, float softcap, cudaStream_t s);

// ---- rmsnorm.cu ---- out[T,H], rstd[T], x[T,H], w[H] (used as w + w_offset); dw (nullable) accumulates
void rmsnorm_forward(void* out, DType ot, void* rstd, DType rt, const void* x, DType xt, const void* w, DType wt,
                     int64_t T, int64_t H, float eps, float w_offset, cudaStream_t s);
void rmsnorm_backward(void* dx, DType dxt, void* dw, DType dwt, const void* dout, DType dt, const void* x, DType xt,
                      const void* w, DType wt, const void* rstd, DType rt, int64_t T, int64_t H, float w_offset,
                      cudaStream_t s);

// ---- layernorm.cu ---- out[T,H], mean[T], rstd[T], x[T,H], w[H], b[H]; dw, db (nullable) accumulate
void layernorm_forward(void* out, DType ot, void* mean, DType mt, void* rstd, DType rt, const void* x, DType xt,
                       const void* w, DType wt, const void* b, DType bt, int64_t T, int64_t H, float eps,
                       cudaStream_t s);
void layernorm_backward(void* dx, DType dxt, void* dw, DType dwt, void* db, DType dbt, const void* dout, DType dt,
                        const void* x, DType xt, const void* w, DType wt, const void* mean, DType mt,
                        const void* rstd, DType rt, int64_t T, int64_t H, cudaStream_t s);

// ---- rope.cu ---- x[T, n_heads, D] in place; positions[T] int32, inv_freq[half] fp32 (device);
// the first 2*half dims of each head rotate (half < D/2: partial rotary), the rest pass through
void rope_forward(void* x, DType xt, const int32_t* positions, const float* inv_freq, int64_t T, int64_t n_heads,
                  int64_t D, int64_t half, cudaStream_t s);
void rope_backward(void* dx, DType xt, const int32_t* positions, const float* inv_freq, int64_t T, int64_t n_heads,
                   int64_t D, int64_t half, cudaStream_t s);

// ---- attention.cu ---- packed varlen, GQA, causal or bidirectional, never L x L.
// q[T,Hq,D], k/v[T,Hkv,D], out[T,Hq,D] share dtype t (F32 or BF16); lse[T,Hq] fp32;
// cu_seqlens[B+1] on the device; max_len = the longest sequence. D <= 256, even.
// Relative position bias (T5): table[2 * span - 1, Hq] fp32, score (i, j) of head h gets
// table[j - i + span - 1, h] added; the backward atomically adds dL/d(score) into grad (same
// shape, fp32, zeroed by the caller) when grad is set.
struct AttnRelBias {
  const float* table = nullptr;
  float* grad = nullptr;
  int64_t span = 0;
};
void attention_forward(void* out, float* lse, const void* q, const void* k, const void* v, DType t,
                       const int32_t* cu_seqlens, int64_t B, int64_t max_len, int64_t T, int64_t Hq, int64_t Hkv,
                       int64_t D, bool causal, float scale, double softcap, int64_t window, cudaStream_t s,
                       const AttnRelBias& rel = {});
// softcap > 0: scores -> softcap tanh(s / softcap); window > 0: keys with i - j < window only.
// dq, dk, dv overwritten; delta[T,Hq] fp32 scratch (rowsum(dout * out))
void attention_backward(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q, const void* k,
                        const void* v, const void* out, const float* lse, DType t, const int32_t* cu_seqlens,
                        int64_t B, int64_t max_len, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, bool causal,
                        float scale, double softcap, int64_t window, cudaStream_t s, const AttnRelBias& rel = {});
bool attention_supports_head_dim(int64_t D);

// ---- activations.cu ---- elementwise over n
void swiglu_forward(void* out, DType ot, const void* gate, DType gt, const void* up, DType ut, int64_t n,
                    cudaStream_t s);
void swiglu_backward(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt, const void* gate,
                     DType gt, const void* up, DType ut, int64_t n, cudaStream_t s);
void gelu_forward(void* out, DType ot, const void* x, DType xt, int64_t n, cudaStream_t s);
void gelu_backward(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt, int64_t n,
                   cudaStream_t s);

// act: 0 silu, 1 erf gelu, 2 tanh gelu, 3 relu (core Activation); out = act(x) or act(gate) * up
void activation_forward(void* out, DType ot, const void* x, DType xt, int64_t n, int act, cudaStream_t s);
void activation_backward(void* dx, DType dxt, const void* dout, DType dt, const void* x, DType xt, int64_t n, int act,
                         cudaStream_t s);
void gated_forward(void* out, DType ot, const void* gate, DType gt, const void* up, DType ut, int64_t n, int act,
                   cudaStream_t s);
void gated_backward(void* dgate, DType dgt, void* dup, DType dut, const void* dout, DType dt, const void* gate,
                    DType gt, const void* up, DType ut, int64_t n, int act, cudaStream_t s);

// ---- dropout.cu ---- out[T,N] = x * keep(seed, row_keys[t], j) / (1 - p); row_keys[T] (device).
// The backward is the same map applied to dout.
void dropout_forward(void* out, DType ot, const void* x, DType xt, int64_t T, int64_t N, double p, uint64_t seed,
                     const uint64_t* row_keys, cudaStream_t s);

// ---- embedding.cu ---- table[V,H], ids[T] (device, validated by the core)
void embedding_forward(void* out, DType ot, const void* table, DType tt, const int32_t* ids, int64_t T, int64_t H,
                       bool accumulate, cudaStream_t s);  // out[T,H] (= or +=)
void embedding_backward(void* dtable, DType dtt, const void* dout, DType dt, const int32_t* ids, int64_t T,
                        int64_t H, cudaStream_t s);  // dtable accumulates (atomics)

// ---- pooling.cu ---- mode: 0 eos, 1 cls, 2 mean; cu_seqlens[B+1] on the device
void pool_forward(void* out, DType ot, const void* h, DType ht, const int32_t* cu_seqlens, int64_t B, int64_t H,
                  int mode, bool normalize, cudaStream_t s);  // out[B,H], L2-normalised when normalize
void pool_backward(void* dh, DType dht, const void* dout, DType dt, const int32_t* cu_seqlens, int64_t B, int64_t T,
                   int64_t H, int mode, cudaStream_t s);  // dh[T,H] overwritten
void l2normalize_forward(void* y, DType yt, const void* x, DType xt, int64_t R, int64_t H, cudaStream_t s);

// ---- infonce.cu ---- fp32: q[B,H], p[P,H] (P = B*group); writes dq, dp; the fused retrieval loss
// (cpp/core/retrieval_loss.h): parts[0] = mean contrastive, parts[1] = mean distill (device doubles).
// distill: 0 none, 1 kl, 2 stable; rank, rank_of [P] int32 and teacher_weight [P] on the device
// (teacher_weight may be null without distillation). workspace: infonce_workspace_floats(B, P) floats
int64_t infonce_workspace_floats(int64_t B, int64_t P);
void infonce_forward_backward(float* dq, float* dp, double* parts, const float* q, const float* p, int64_t B,
                              int64_t P, int64_t H, int64_t group, float temperature, bool cosine, bool in_batch,
                              int distill, float contrastive_weight, float distill_weight, float student_temperature,
                              const int32_t* rank, const int32_t* rank_of, const float* teacher_weight,
                              float* workspace, cudaStream_t s);

// ---- optimizer.cu ---- in place on param (and m, v); fp32 math whatever the dtypes
void adamw_step(void* param, DType pt, const void* grad, DType gt, void* m, DType mt, void* v, DType vt, int64_t n,
                double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step, double grad_scale,
                cudaStream_t s);
void sgd_step(void* param, DType pt, const void* grad, DType gt, int64_t n, double lr, double weight_decay,
              double grad_scale, cudaStream_t s);
void sum_squares(double* out, const void* x, DType xt, int64_t n, cudaStream_t s);  // *out = sum x^2

// ---- topk.cu ---- one tile of scores [rows, cols] (row stride ld) merged into the running
// best_scores/best_ids [rows, k] (device; sorted by score desc, ties by smaller id, -inf = empty).
// Tile column c has id base_id + c. Sets *nan_flag (device int) when a score is NaN.
int64_t topk_max_k();
void topk_merge_tile(float* best_scores, int64_t* best_ids, int64_t k, const float* scores, int64_t rows,
                     int64_t cols, int64_t ld, int64_t base_id, int* nan_flag, cudaStream_t s);

}  // namespace lmdr::cuda
