// The CPU kernels behind CpuBackend<T>: one file per op family, each with its <op>_forward /
// <op>_backward pair taking raw host pointers and sizes (shapes in trailing comments).
// T is float ("cpu") or double ("cpu-f64"); every function is instantiated for both.
// Reductions that decide accuracy (norm statistics, softmax sums, losses) accumulate in double.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace lmdr::cpu {

// ---- matmul.cpp ----
// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C; beta == 0 ignores what C held (NaN too).
template <typename T>
void matmul(T* C, const T* A, const T* B, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, T alpha, T beta);

// ---- elementwise.cpp ----
template <typename T> void fill(T* x, int64_t n, T value);
template <typename T> void add(T* out, const T* a, const T* b, int64_t n);  // out may alias a or b
template <typename T> void scale(T* x, int64_t n, T s);
template <typename T> void axpy(T* y, T a, const T* x, int64_t n);
template <typename T> void add_bias(T* y, const T* bias, int64_t rows, int64_t cols);       // y[R,C] += bias[C]
template <typename T> void bias_backward(T* dbias, const T* dy, int64_t rows, int64_t cols);  // dbias[C] += sum_r dy[R,C]

// ---- convert.cpp ----
// Host buffers of any loadable dtype <-> T. BF16 and F16 are decoded exactly.
template <typename T> void convert_from(T* dst, const void* src, DType src_dtype, int64_t n);
template <typename T> void convert_to(void* dst, DType dst_dtype, const T* src, int64_t n);

// ---- rmsnorm.cpp ----
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t rows, int64_t H, double eps,
                     double w_offset);
template <typename T>
void rmsnorm_backward(T* dx, T* dw /* nullable, accumulate */, const T* dout, const T* x,
                      const T* w, const T* rstd, int64_t rows, int64_t H, double w_offset);

// ---- layernorm.cpp ----
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* x, const T* w, const T* b, int64_t rows,
                       int64_t H, double eps);
template <typename T>
void layernorm_backward(T* dx, T* dw /* nullable */, T* db /* nullable */, const T* dout,
                        const T* x, const T* w, const T* mean, const T* rstd, int64_t rows,
                        int64_t H);

// ---- rope.cpp ---- x[T, heads, D] in place, the first 2*inv_freq.size() dims of each head
// (partial rotary); inverse=true rotates by -angle (the backward).
template <typename T>
void rope_apply(T* x, int64_t heads, int64_t D, const std::vector<double>& inv_freq,
                const std::vector<int32_t>& cu_seqlens, bool inverse);

// ---- attention.cpp ----
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t Hq,
                       int64_t Hkv, int64_t D, const std::vector<int32_t>& cu_seqlens,
                       bool causal, double scale, const AttentionMods& mods);
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int64_t Hq, int64_t Hkv, int64_t D,
                        const std::vector<int32_t>& cu_seqlens, bool causal, double scale,
                        const AttentionMods& mods);

// ---- activations.cpp ----
template <typename T> void swiglu_forward(T* out, const T* gate, const T* up, int64_t n);
template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n);
template <typename T> void gelu_forward(T* out, const T* x, int64_t n);
template <typename T> void gelu_backward(T* dx, const T* dout, const T* x, int64_t n);
// Silu, GeluTanh, Relu (erf GELU and SwiGLU are the functions above), elementwise over n.
template <typename T> void activation_forward(T* out, const T* x, int64_t n, Activation act);
template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, int64_t n, Activation act);
template <typename T> void gated_forward(T* out, const T* gate, const T* up, int64_t n, Activation act);
template <typename T>
void gated_backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n,
                    Activation act);
// out[R,C] = x * keep(seed, row_keys[r], c) / (1 - p); the backward is the same map on dout.
template <typename T>
void dropout_apply(T* out, const T* x, int64_t rows, int64_t cols, double p, uint64_t seed,
                   const std::vector<uint64_t>& row_keys);

// ---- elementwise.cpp ---- dst[R, dst_col..+ncols] = src[R, src_col..+ncols] (row strides ldd, lds)
template <typename T>
void copy_columns(T* dst, int64_t ldd, int64_t dst_col, const T* src, int64_t lds, int64_t src_col,
                  int64_t rows, int64_t ncols);

// ---- lm_head.cpp ---- logits[N,Vb] (capped in place), running max/sum[N], target[N]
template <typename T>
void logits_block_update(T* logits, T* run_max, T* run_sum, T* target, const int32_t* targets,
                         int64_t N, int64_t Vb, int64_t v0, double softcap);

// ---- embedding.cpp ----
template <typename T>
void embedding_forward(T* out, const T* table, const std::vector<int32_t>& ids, int64_t H,
                       bool accumulate);
template <typename T>
void embedding_backward(T* dtable, const T* dout, const std::vector<int32_t>& ids, int64_t H);

// ---- pooling.cpp ----
template <typename T>
void pool_forward(T* out, const T* h, const std::vector<int32_t>& cu_seqlens, int64_t H,
                  Pooling mode);
template <typename T>
void pool_backward(T* dh, const T* dout, const std::vector<int32_t>& cu_seqlens, int64_t H,
                   Pooling mode);
template <typename T> void l2normalize_forward(T* y, const T* x, int64_t rows, int64_t H);

// ---- infonce.cpp ---- q[B,H], p[B*G,H] -> dq, dp; the fused retrieval loss (core/retrieval_loss.h).
template <typename T>
LossParts infonce_forward_backward(T* dq, T* dp, const T* q, const T* p, int64_t B, int64_t H,
                                   const LossSpec& spec);

// ---- optimizer.cpp ----
template <typename T> double sum_squares(const T* x, int64_t n);
template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, int64_t step, double grad_scale);
template <typename T>
void sgd_step(T* param, const T* grad, int64_t n, double lr, double weight_decay,
              double grad_scale);

}  // namespace lmdr::cpu
