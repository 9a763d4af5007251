// CpuBackend<T>: the Backend op table on the host, T = float ("cpu") or double ("cpu-f64").
// This file only checks dtypes, unpacks shapes and forwards to the kernels declared in
// cpu/ops.h (one file per op family).
#include "cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cpu/ops.h"
#include "cpu/topk.h"

namespace lmdr {
namespace {

template <typename T> constexpr DType dtype_of() {
  return std::is_same<T, float>::value ? DType::F32 : DType::F64;
}

template <typename T> class CpuBackend final : public Backend {
 public:
  std::string name() const override { return std::is_same<T, float>::value ? "cpu" : "cpu-f64"; }
  DType act_dtype() const override { return dtype_of<T>(); }
  DType param_dtype() const override { return dtype_of<T>(); }

  // ---- memory: 64-byte aligned host blocks ----
  void* raw_alloc(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw Error(name() + ": out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void raw_free(void* p) override { std::free(p); }

  void upload(Tensor& dst, const void* src, DType src_dtype) override {
    switch (dst.dtype) {
      case DType::F32: cpu::convert_from(dst.ptr<float>(), src, src_dtype, dst.numel()); return;
      case DType::F64: cpu::convert_from(dst.ptr<double>(), src, src_dtype, dst.numel()); return;
      default:
        if (src_dtype != dst.dtype)
          throw Error(name() + ": upload " + dtype_name(src_dtype) + " into a " + dtype_name(dst.dtype) + " tensor is not supported");
        std::memcpy(dst.data, src, dst.bytes());
    }
  }
  void download(void* dst, DType dst_dtype, const Tensor& src) override {
    switch (src.dtype) {
      case DType::F32: cpu::convert_to(dst, dst_dtype, src.ptr<float>(), src.numel()); return;
      case DType::F64: cpu::convert_to(dst, dst_dtype, src.ptr<double>(), src.numel()); return;
      default:
        if (dst_dtype != src.dtype)
          throw Error(name() + ": download of a " + dtype_name(src.dtype) + " tensor as " + dtype_name(dst_dtype) + " is not supported");
        std::memcpy(dst, src.data, src.bytes());
    }
  }
  void fill(Tensor& t, double value) override {
    switch (t.dtype) {
      case DType::F32: cpu::fill(t.ptr<float>(), t.numel(), float(value)); return;
      case DType::F64: cpu::fill(t.ptr<double>(), t.numel(), value); return;
      case DType::I32: for (int64_t i = 0; i < t.numel(); i++) t.ptr<int32_t>()[i] = int32_t(value); return;
      case DType::I64: for (int64_t i = 0; i < t.numel(); i++) t.ptr<int64_t>()[i] = int64_t(value); return;
      default: throw Error(name() + ": fill of a " + std::string(dtype_name(t.dtype)) + " tensor is not supported");
    }
  }
  void copy(Tensor& dst, const Tensor& src) override {
    if (dst.dtype != src.dtype || dst.numel() != src.numel())
      throw Error(name() + ": copy " + src.shape_str() + " " + dtype_name(src.dtype) + " into " +
                  dst.shape_str() + " " + dtype_name(dst.dtype));
    if (dst.data != src.data) std::memmove(dst.data, src.data, src.bytes());
  }

  // ---- linear algebra ----
  void matmul(Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b, float alpha,
              float beta) override {
    int64_t M = lead(C), N = C.dim(-1);
    int64_t K = trans_a ? lead(A) : A.dim(-1);
    if ((trans_a ? A.dim(-1) : lead(A)) != M || B.numel() != K * N)
      throw Error(name() + ": matmul shapes C" + C.shape_str() + " A" + A.shape_str() + (trans_a ? "^T" : "") +
                  " B" + B.shape_str() + (trans_b ? "^T" : "") + " do not agree");
    cpu::matmul(p(C, "C"), p(A, "A"), p(B, "B"), M, N, K, trans_a, trans_b, T(alpha), T(beta));
  }
  void add_bias(Tensor& y, const Tensor& bias) override {
    cpu::add_bias(p(y, "y"), p(bias, "bias"), lead(y), bias.numel());
  }
  void bias_backward(Tensor& dbias, const Tensor& dy) override {
    cpu::bias_backward(p(dbias, "dbias"), p(dy, "dy"), lead(dy), dbias.numel());
  }
  void add(Tensor& out, const Tensor& a, const Tensor& b) override {
    cpu::add(p(out, "out"), p(a, "a"), p(b, "b"), out.numel());
  }
  void scale(Tensor& x, double s) override { cpu::scale(p(x, "x"), x.numel(), T(s)); }
  void axpy(Tensor& y, double a, const Tensor& x) override {
    cpu::axpy(p(y, "y"), T(a), p(x, "x"), y.numel());
  }

  // ---- normalisation ----
  void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& w,
                       double eps, double w_offset) override {
    int64_t H = w.numel();
    cpu::rmsnorm_forward(p(out, "out"), p(rstd, "rstd"), p(x, "x"), p(w, "w"), lead(x), H, eps, w_offset);
  }
  void rmsnorm_backward(Tensor& dx, Tensor* dw, const Tensor& dout, const Tensor& x,
                        const Tensor& w, const Tensor& rstd, double w_offset) override {
    int64_t H = w.numel();
    cpu::rmsnorm_backward(p(dx, "dx"), opt(dw, "dw"), p(dout, "dout"), p(x, "x"), p(w, "w"),
                          p(rstd, "rstd"), lead(x), H, w_offset);
  }
  void layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x,
                         const Tensor& w, const Tensor& b, double eps) override {
    int64_t H = w.numel();
    cpu::layernorm_forward(p(out, "out"), p(mean, "mean"), p(rstd, "rstd"), p(x, "x"), p(w, "w"),
                           p(b, "b"), lead(x), H, eps);
  }
  void layernorm_backward(Tensor& dx, Tensor* dw, Tensor* db, const Tensor& dout, const Tensor& x,
                          const Tensor& w, const Tensor& mean, const Tensor& rstd) override {
    int64_t H = w.numel();
    cpu::layernorm_backward(p(dx, "dx"), opt(dw, "dw"), opt(db, "db"), p(dout, "dout"), p(x, "x"),
                            p(w, "w"), p(mean, "mean"), p(rstd, "rstd"), lead(x), H);
  }

  // ---- rotary embedding ----
  void rope_forward(Tensor& x, const std::vector<double>& inv_freq,
                    const std::vector<int32_t>& cu_seqlens) override {
    rope(x, inv_freq, cu_seqlens, false);
  }
  void rope_backward(Tensor& dx, const std::vector<double>& inv_freq,
                     const std::vector<int32_t>& cu_seqlens) override {
    rope(dx, inv_freq, cu_seqlens, true);
  }

  // ---- attention ----
  void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, const std::vector<int32_t>& cu_seqlens, bool causal,
                         double scale, const AttentionMods& mods) override {
    check_heads(q, k);
    check_rel_bias(mods, q, cu_seqlens, name() + ": attention_forward");
    cpu::attention_forward(p(out, "out"), p(lse, "lse"), p(q, "q"), p(k, "k"), p(v, "v"), q.dim(1),
                           k.dim(1), q.dim(2), cu_seqlens, causal, scale, mods);
  }
  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const std::vector<int32_t>& cu_seqlens, bool causal,
                          double scale, const AttentionMods& mods) override {
    check_heads(q, k);
    check_rel_bias(mods, q, cu_seqlens, name() + ": attention_backward");
    cpu::attention_backward(p(dq, "dq"), p(dk, "dk"), p(dv, "dv"), p(dout, "dout"), p(q, "q"),
                            p(k, "k"), p(v, "v"), p(out, "out"), p(lse, "lse"), q.dim(1), k.dim(1),
                            q.dim(2), cu_seqlens, causal, scale, mods);
  }

  // ---- activations ----
  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override {
    cpu::swiglu_forward(p(out, "out"), p(gate, "gate"), p(up, "up"), out.numel());
  }
  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    cpu::swiglu_backward(p(dgate, "dgate"), p(dup, "dup"), p(dout, "dout"), p(gate, "gate"),
                         p(up, "up"), dout.numel());
  }
  void gelu_forward(Tensor& out, const Tensor& x) override {
    cpu::gelu_forward(p(out, "out"), p(x, "x"), x.numel());
  }
  void gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) override {
    cpu::gelu_backward(p(dx, "dx"), p(dout, "dout"), p(x, "x"), x.numel());
  }
  void activation_forward(Tensor& out, const Tensor& x, Activation act) override {
    if (act == Activation::Gelu) return gelu_forward(out, x);
    cpu::activation_forward(p(out, "out"), p(x, "x"), x.numel(), act);
  }
  void activation_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activation act) override {
    if (act == Activation::Gelu) return gelu_backward(dx, dout, x);
    cpu::activation_backward(p(dx, "dx"), p(dout, "dout"), p(x, "x"), x.numel(), act);
  }
  void gated_forward(Tensor& out, const Tensor& gate, const Tensor& up, Activation act) override {
    if (act == Activation::Silu) return swiglu_forward(out, gate, up);
    cpu::gated_forward(p(out, "out"), p(gate, "gate"), p(up, "up"), out.numel(), act);
  }
  void gated_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up,
                      Activation act) override {
    if (act == Activation::Silu) return swiglu_backward(dgate, dup, dout, gate, up);
    cpu::gated_backward(p(dgate, "dgate"), p(dup, "dup"), p(dout, "dout"), p(gate, "gate"), p(up, "up"),
                        dout.numel(), act);
  }
  void copy_columns(Tensor& dst, int64_t dst_col, const Tensor& src, int64_t src_col, int64_t ncols) override {
    const int64_t R = lead(src), Cd = dst.dim(-1), Cs = src.dim(-1);
    if (lead(dst) != R || dst_col < 0 || src_col < 0 || dst_col + ncols > Cd || src_col + ncols > Cs)
      throw Error(name() + ": copy_columns: " + std::to_string(ncols) + " columns from " + std::to_string(src_col) +
                  " of " + src.shape_str() + " to " + std::to_string(dst_col) + " of " + dst.shape_str());
    cpu::copy_columns(p(dst, "dst"), Cd, dst_col, p(src, "src"), Cs, src_col, R, ncols);
  }
  void logits_block_update(Tensor& logits, Tensor& run_max, Tensor& run_sum, Tensor& target,
                           const std::vector<int32_t>& targets, int64_t v0, double softcap) override {
    const int64_t N = lead(logits);
    if (int64_t(targets.size()) != N || run_max.numel() != N || run_sum.numel() != N || target.numel() != N)
      throw Error(name() + ": logits_block_update: logits" + logits.shape_str() + " with " +
                  std::to_string(targets.size()) + " targets");
    cpu::logits_block_update(p(logits, "logits"), p(run_max, "max"), p(run_sum, "sum"), p(target, "target"),
                             targets.data(), N, logits.dim(-1), v0, softcap);
  }
  void dropout_forward(Tensor& out, const Tensor& x, double prob, uint64_t seed,
                       const std::vector<uint64_t>& row_keys) override {
    cpu::dropout_apply(p(out, "out"), p(x, "x"), int64_t(row_keys.size()),
                       rows_cols(x, row_keys.size()), prob, seed, row_keys);
  }
  void dropout_backward(Tensor& dx, const Tensor& dout, double prob, uint64_t seed,
                        const std::vector<uint64_t>& row_keys) override {
    cpu::dropout_apply(p(dx, "dx"), p(dout, "dout"), int64_t(row_keys.size()),
                       rows_cols(dout, row_keys.size()), prob, seed, row_keys);
  }

  // ---- embeddings, pooling ----
  void embedding_forward(Tensor& out, const Tensor& table, const std::vector<int32_t>& ids,
                         bool accumulate) override {
    cpu::embedding_forward(p(out, "out"), p(table, "table"), ids, table.dim(-1), accumulate);
  }
  void embedding_backward(Tensor& dtable, const Tensor& dout,
                          const std::vector<int32_t>& ids) override {
    cpu::embedding_backward(p(dtable, "dtable"), p(dout, "dout"), ids, dtable.dim(-1));
  }
  void pool_forward(Tensor& out, const Tensor& h, const std::vector<int32_t>& cu_seqlens,
                    Pooling mode) override {
    cpu::pool_forward(p(out, "out"), p(h, "h"), cu_seqlens, h.dim(-1), mode);
  }
  void pool_backward(Tensor& dh, const Tensor& dout, const std::vector<int32_t>& cu_seqlens,
                     Pooling mode) override {
    cpu::pool_backward(p(dh, "dh"), p(dout, "dout"), cu_seqlens, dh.dim(-1), mode);
  }
  void l2normalize_forward(Tensor& y, const Tensor& x) override {
    cpu::l2normalize_forward(p(y, "y"), p(x, "x"), lead(x), x.dim(-1));
  }

  // ---- losses, optimisers ----
  LossParts infonce_forward_backward(Tensor& dq, Tensor& dp, const Tensor& q, const Tensor& pp,
                                     const LossSpec& spec) override {
    int64_t H = q.dim(-1), B = lead(q), group = spec.group;
    if (pp.numel() != B * group * H)
      throw Error(name() + ": infonce: p" + pp.shape_str() + " is not [" + std::to_string(B * group) +
                  "," + std::to_string(H) + "] for q" + q.shape_str() + " and group " + std::to_string(group));
    return cpu::infonce_forward_backward(p(dq, "dq"), p(dp, "dp"), p(q, "q"), p(pp, "p"), B, H, spec);
  }
  double sum_squares(const Tensor& x) override { return cpu::sum_squares(p(x, "x"), x.numel()); }
  void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int64_t step,
                  double grad_scale) override {
    if (step < 1) throw Error(name() + ": adamw step must be >= 1, got " + std::to_string(step));
    cpu::adamw_step(p(param, "param"), p(grad, "grad"), p(m, "m"), p(v, "v"), param.numel(), lr,
                    beta1, beta2, eps, weight_decay, step, grad_scale);
  }
  void sgd_step(Tensor& param, const Tensor& grad, double lr, double weight_decay,
                double grad_scale) override {
    cpu::sgd_step(p(param, "param"), p(grad, "grad"), param.numel(), lr, weight_decay, grad_scale);
  }

  // ---- search ----
  void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const Tensor& queries,
                  const Tensor& corpus, int64_t base_id) override {
    int64_t H = queries.dim(-1);
    cpu::topk_merge<T>(best_scores, best_ids, k, p(queries, "queries"), lead(queries),
                       p(corpus, "corpus"), lead(corpus), H, base_id);
  }

 private:
  // Product of all but the last dimension: the row count of a [..., H] tensor.
  static int64_t lead(const Tensor& t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t.ndim(); i++) n *= t.shape[i];
    return n;
  }
  // The data of a compute-dtype tensor; a wrong dtype is a core bug, reported by name.
  T* p(const Tensor& t, const char* what) const {
    if (t.dtype != dtype_of<T>())
      throw Error(name() + ": tensor " + what + " is " + dtype_name(t.dtype) + ", expected " +
                  dtype_name(dtype_of<T>()));
    return t.ptr<T>();
  }
  T* opt(Tensor* t, const char* what) const { return t && t->defined() ? p(*t, what) : nullptr; }
  void check_heads(const Tensor& q, const Tensor& k) const {
    if (q.ndim() != 3 || k.ndim() != 3 || k.dim(1) == 0 || q.dim(1) % k.dim(1) || q.dim(2) != k.dim(2))
      throw Error(name() + ": attention: q" + q.shape_str() + " and k" + k.shape_str() +
                  " are not [T,Hq,D] and [T,Hkv,D] with Hq a multiple of Hkv");
  }
  int64_t rows_cols(const Tensor& x, size_t rows) const {
    if (rows == 0 || x.numel() % int64_t(rows))
      throw Error(name() + ": dropout: " + std::to_string(rows) + " row keys for tensor " + x.shape_str());
    return x.numel() / int64_t(rows);
  }
  void rope(Tensor& x, const std::vector<double>& inv_freq, const std::vector<int32_t>& cu,
            bool inverse) {
    int64_t D = x.dim(-1), heads = x.dim(-2);
    if (inv_freq.empty() || int64_t(inv_freq.size()) * 2 > D)
      throw Error(name() + ": rope: inv_freq has " + std::to_string(inv_freq.size()) +
                  " entries for head dim " + std::to_string(D) + " (1 to D/2 expected)");
    cpu::rope_apply(p(x, "x"), heads, D, inv_freq, cu, inverse);
  }
};

}  // namespace

Backend* cpu_backend_f32() {
  static CpuBackend<float> backend;
  return &backend;
}
Backend* cpu_backend_f64() {
  static CpuBackend<double> backend;
  return &backend;
}

}  // namespace lmdr
