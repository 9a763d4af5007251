// The one op table every backend fills (CPU: cpp/cpu/, CUDA: cuda/). The core composes
// models, losses and optimizers from these ops and never knows which backend runs them.
//
// Conventions
// - Row-major. Shapes are given in trailing comments; T = total tokens of a packed batch.
// - Batches are packed, never padded: sequence b owns rows cu_seqlens[b] .. cu_seqlens[b+1]
//   of every [T, ...] activation, and gets positions 0..L_b-1. cu_seqlens has B+1 entries,
//   starts at 0, int32, and lives in HOST memory (backends copy what they need).
// - Float tensors use the backend's compute dtype (act_dtype(): F32 or F64 on the CPU,
//   BF16 on CUDA) unless a comment says F32. Optimizer state and gradients of trainable
//   parameters are param_dtype() (F32 on CUDA, the compute dtype on the CPU).
//   The core accumulates weight gradients straight into those param_dtype tensors: the
//   gradient output of matmul (C), bias_backward, rmsnorm/layernorm_backward (dw, db) and
//   embedding_backward may be param_dtype while their inputs are act_dtype.
// - "accumulate" outputs are added to (+=); everything else is overwritten.
// - Every op validates nothing about shapes beyond what it needs to not crash: the core
//   checks shapes once, when it builds the graph.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "retrieval_loss.h"
#include "tensor.h"

namespace lmdr {

enum class Pooling : uint8_t { Eos, Cls, Mean };  // Eos = last token of each sequence

// Elementwise activations: silu, erf GELU, tanh-approximated GELU (HF "gelu_new" /
// "gelu_pytorch_tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))) and ReLU.
enum class Activation : uint8_t { Silu, Gelu, GeluTanh, Relu };

// What distinguishes the attention of some architectures (defaults: plain softmax attention).
struct AttentionMods {
  double softcap = 0;  // > 0: scores s -> softcap * tanh(s / softcap) before masking (Gemma 2)
  int64_t window = 0;  // > 0: query i sees keys j with i - j < window only (sliding window)
  // Relative position bias (T5): score (i, j) of query head h gets rel_bias[j - i + span - 1, h]
  // added (before any soft-cap). rel_bias is [2 * span - 1, Hq] in the activation dtype, span at
  // least the longest sequence. In the backward, *d_rel_bias (same shape) is overwritten with
  // dL/d(rel_bias): the sum of dL/d(score) over every (i, j, h) that read the entry.
  const Tensor* rel_bias = nullptr;
  Tensor* d_rel_bias = nullptr;
};

// Every backend's check of AttentionMods::rel_bias against q [T, Hq, D] and the sequences.
inline void check_rel_bias(const AttentionMods& m, const Tensor& q, const std::vector<int32_t>& cu_seqlens,
                           const std::string& who) {
  if (!m.rel_bias) return;
  const Tensor& r = *m.rel_bias;
  int32_t longest = 0;
  for (size_t b = 0; b + 1 < cu_seqlens.size(); b++) longest = std::max(longest, cu_seqlens[b + 1] - cu_seqlens[b]);
  if (r.ndim() != 2 || r.dim(0) % 2 == 0 || r.dim(1) != q.dim(1) || (r.dim(0) + 1) / 2 < longest || r.dtype != q.dtype)
    throw Error(who + ": rel_bias " + r.shape_str() + " must be [2 * span - 1, " + std::to_string(q.dim(1)) +
                "] with span >= the longest sequence (" + std::to_string(longest) + ") in q's dtype");
  if (m.d_rel_bias && (m.d_rel_bias->shape != r.shape || m.d_rel_bias->dtype != r.dtype))
    throw Error(who + ": d_rel_bias " + m.d_rel_bias->shape_str() + " must match rel_bias " + r.shape_str());
}

// Llama-3 style rope_scaling ("rope_type": "llama3"); factor == 0 means no scaling.
struct RopeScaling {
  double factor = 0, low_freq_factor = 1, high_freq_factor = 4;
  double original_max_position_embeddings = 8192;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cpu-f64", "cuda:0"
  virtual DType act_dtype() const = 0;
  virtual DType param_dtype() const = 0;

  // ---- memory ----
  virtual void* raw_alloc(size_t bytes) = 0;
  virtual void raw_free(void* p) = 0;
  Tensor empty(std::vector<int64_t> shape, DType dtype);
  Tensor empty(std::vector<int64_t> shape) { return empty(std::move(shape), act_dtype()); }
  Tensor zeros(std::vector<int64_t> shape, DType dtype);
  Tensor zeros(std::vector<int64_t> shape) { return zeros(std::move(shape), act_dtype()); }
  // Host -> device with conversion. src_dtype: F32, F64, F16, BF16, I32 (host layout).
  virtual void upload(Tensor& dst, const void* src, DType src_dtype) = 0;
  // Device -> host, converting to F32 or F64 (I32 tensors copy as I32).
  virtual void download(void* dst, DType dst_dtype, const Tensor& src) = 0;
  virtual void fill(Tensor& t, double value) = 0;
  virtual void copy(Tensor& dst, const Tensor& src) = 0;  // same dtype & numel
  // dst = src converted to dst's dtype (same numel). Default: a round trip through the host in
  // F64; backends may override. Used where param_dtype != act_dtype (master weights, grads).
  virtual void convert(Tensor& dst, const Tensor& src);
  virtual void synchronize() {}
  // Profiler ranges (NVTX on CUDA, so `nsys profile` shows each layer; no-ops elsewhere).
  // Pair them with BackendRange below.
  virtual void range_push(const char* name) { (void)name; }
  virtual void range_pop() {}

  // ---- linear algebra ----
  // C[M,N] = alpha * op(A) @ op(B) + beta * C; op(X) = X^T when trans_X.
  // A is [M,K] (or [K,M] if trans_a), B is [K,N] (or [N,K] if trans_b). For a linear layer
  // y = x W^T: matmul(y, x, W, false, true). All three share one dtype.
  virtual void matmul(Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b,
                      float alpha, float beta) = 0;
  virtual void add_bias(Tensor& y, const Tensor& bias) = 0;               // y[T,N] += bias[N]
  virtual void bias_backward(Tensor& dbias, const Tensor& dy) = 0;        // dbias[N] += sum_t dy[T,N]
  virtual void add(Tensor& out, const Tensor& a, const Tensor& b) = 0;    // out = a + b (out may alias)
  virtual void scale(Tensor& x, double s) = 0;                            // x *= s
  virtual void axpy(Tensor& y, double a, const Tensor& x) = 0;           // y += a * x

  // ---- normalisation (statistics saved in F32 on CUDA, compute dtype on CPU) ----
  // out[T,H] = x / sqrt(mean(x^2) + eps) * (w + w_offset) ; rstd[T]. w_offset is 1 for
  // Gemma's RMSNorm (weights stored as w - 1), 0 otherwise.
  virtual void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& w,
                               double eps, double w_offset = 0) = 0;
  // dx[T,H] (overwritten), dw[H] (accumulate; may be undefined = frozen)
  virtual void rmsnorm_backward(Tensor& dx, Tensor* dw, const Tensor& dout, const Tensor& x,
                                const Tensor& w, const Tensor& rstd, double w_offset = 0) = 0;
  // out[T,H] = (x - mean) * rstd * w + b ; mean[T], rstd[T]
  virtual void layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                                 const Tensor& w, const Tensor& b, double eps) = 0;
  // dx overwritten; dw, db accumulate (may be null = frozen)
  virtual void layernorm_backward(Tensor& dx, Tensor* dw, Tensor* db, const Tensor& dout,
                                  const Tensor& x, const Tensor& w, const Tensor& mean,
                                  const Tensor& rstd) = 0;

  // ---- rotary embedding, rotate-half convention (HF), in place ----
  // x[T, n_heads, D]; inv_freq[R/2] F64 on host (already llama3-scaled), R <= D the rotary
  // dims: pairs (i, i + R/2) of the first R dims of each head turn, the rest pass through
  // (partial rotary, Phi). Positions come from cu_seqlens (0..L-1 per sequence). HF computes
  // angle = float32(pos * inv_freq).
  virtual void rope_forward(Tensor& x, const std::vector<double>& inv_freq,
                            const std::vector<int32_t>& cu_seqlens) = 0;
  // Inverse rotation of the gradient, in place.
  virtual void rope_backward(Tensor& dx, const std::vector<double>& inv_freq,
                             const std::vector<int32_t>& cu_seqlens) = 0;

  // ---- attention over packed sequences (never materialises L x L) ----
  // q[T,Hq,D], k/v[T,Hkv,D] (Hq % Hkv == 0, query head h uses kv head h / (Hq/Hkv)),
  // out[T,Hq,D], lse[T,Hq] (log-sum-exp of scaled scores, F32 on CUDA), causal or bidirectional,
  // attention only within each sequence.
  virtual void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const std::vector<int32_t>& cu_seqlens,
                                 bool causal, double scale, const AttentionMods& mods = {}) = 0;
  // dq, dk, dv overwritten.
  virtual void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout,
                                  const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& out, const Tensor& lse,
                                  const std::vector<int32_t>& cu_seqlens, bool causal,
                                  double scale, const AttentionMods& mods = {}) = 0;

  // ---- activations ----
  virtual void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) = 0;  // silu(g)*u, [T,I]
  virtual void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                               const Tensor& up) = 0;
  virtual void gelu_forward(Tensor& out, const Tensor& x) = 0;  // erf GELU
  virtual void gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) = 0;
  // out = act(x), [T,N]; act(gate) * up for the gated form (SwiGLU, GeGLU). Silu-gated and
  // erf-GELU are the ops above.
  virtual void activation_forward(Tensor& out, const Tensor& x, Activation act) = 0;
  virtual void activation_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activation act) = 0;
  virtual void gated_forward(Tensor& out, const Tensor& gate, const Tensor& up, Activation act) = 0;
  virtual void gated_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                              const Tensor& up, Activation act) = 0;
  // LoRA dropout with a counter-based RNG so a re-run reproduces the mask exactly:
  // element (t, j) is kept iff hash(seed, row_keys[t], j) >= p; kept values scaled 1/(1-p).
  // x,out [T,N]; row_keys[T] host (stable per token, independent of batching/chunking).
  virtual void dropout_forward(Tensor& out, const Tensor& x, double p, uint64_t seed,
                               const std::vector<uint64_t>& row_keys) = 0;
  virtual void dropout_backward(Tensor& dx, const Tensor& dout, double p, uint64_t seed,
                                const std::vector<uint64_t>& row_keys) = 0;

  // ---- column blocks of row-major matrices (fused projections) ----
  // dst[:, dst_col : dst_col+ncols] = src[:, src_col : src_col+ncols]; dst[R,Cd], src[R,Cs].
  virtual void copy_columns(Tensor& dst, int64_t dst_col, const Tensor& src, int64_t src_col,
                            int64_t ncols) = 0;

  // ---- causal-LM head, one vocabulary block at a time (never [tokens x vocab]) ----
  // logits[N,Vb] (compute dtype) hold the block's scores for vocabulary ids v0..v0+Vb-1; they
  // are soft-capped in place first when softcap > 0. Running log-sum-exp state max[N], sum[N]
  // (F32 on CUDA, compute dtype on CPU; start at -inf / 0) absorbs the block, and target[N]
  // receives the (capped) logit of targets[n] when it falls in the block. targets: host int32.
  virtual void logits_block_update(Tensor& logits, Tensor& run_max, Tensor& run_sum, Tensor& target,
                                   const std::vector<int32_t>& targets, int64_t v0, double softcap) = 0;

  // ---- embeddings ----
  // out[T,H] (= or += when accumulate) table[V,H][ids[t]]; ids host int32, validated by core.
  virtual void embedding_forward(Tensor& out, const Tensor& table, const std::vector<int32_t>& ids,
                                 bool accumulate) = 0;
  virtual void embedding_backward(Tensor& dtable, const Tensor& dout,
                                  const std::vector<int32_t>& ids) = 0;  // accumulate

  // ---- pooling ----
  // out[B,H] from h[T,H]: last token (Eos), first token (Cls) or mean of each sequence.
  virtual void pool_forward(Tensor& out, const Tensor& h, const std::vector<int32_t>& cu_seqlens,
                            Pooling mode) = 0;
  // dh[T,H] overwritten (zeros outside pooled rows).
  virtual void pool_backward(Tensor& dh, const Tensor& dout, const std::vector<int32_t>& cu_seqlens,
                             Pooling mode) = 0;
  // y[B,H] = x / max(||x||, 1e-12) per row (torch.nn.functional.normalize).
  virtual void l2normalize_forward(Tensor& y, const Tensor& x) = 0;

  // ---- losses (inputs/outputs in param_dtype) ----
  // The fused retrieval loss. q[B,H], p[B*G,H]; s_ij = sim(q_i, p_j) / temperature with sim =
  // cosine or dot. Contrastive InfoNCE (loss = mean_i CE(s_i, target i*G)), weighted with KL or
  // stabilized distillation against teacher scores: the modes of spec (core/retrieval_loss.h).
  // Writes dq, dp; returns the loss and its parts.
  virtual LossParts infonce_forward_backward(Tensor& dq, Tensor& dp, const Tensor& q,
                                             const Tensor& p, const LossSpec& spec) = 0;

  // ---- optimisers (all on param_dtype tensors) ----
  virtual double sum_squares(const Tensor& x) = 0;  // for gradient-norm clipping
  // AdamW (decoupled decay, bias-corrected, PyTorch semantics); step >= 1.
  virtual void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int64_t step, double grad_scale) = 0;
  // SGD: param -= lr * (grad * grad_scale + weight_decay * param)
  virtual void sgd_step(Tensor& param, const Tensor& grad, double lr, double weight_decay,
                        double grad_scale) = 0;

  // ---- exact top-k search ----
  // For each query row: the k largest inner products against corpus[N,H] (one block of a
  // larger corpus; corpus rows get ids base_id + row). Merges into the running results
  // best_scores[Q,k] (F32, host, -inf = empty) / best_ids[Q,k] (I64, host), which stay
  // sorted by score descending, ties by smaller id first.
  virtual void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const Tensor& queries,
                          const Tensor& corpus, int64_t base_id) = 0;
};

// Scoped profiler range: `BackendRange r(be, "layer 3");` (name must outlive the scope).
struct BackendRange {
  Backend& be;
  BackendRange(Backend& b, const char* name) : be(b) { be.range_push(name); }
  ~BackendRange() { be.range_pop(); }
  BackendRange(const BackendRange&) = delete;
  BackendRange& operator=(const BackendRange&) = delete;
};

// Backends available in this build. "cpu" (F32), "cpu-f64" (F64: gradient checks), "cuda:N".
Backend* get_backend(const std::string& device);
// Why no CUDA device can be used ("" when one can), and the devices seen.
struct CudaInfo {
  bool compiled = false;
  int device_count = 0;
  std::string error;
  std::vector<std::string> devices;
};
CudaInfo cuda_info();

}  // namespace lmdr
