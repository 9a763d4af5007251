// CudaBackend: the op table of cpp/core/backend.h on one GPU. bf16 activations, fp32 params,
// fp32 accumulation everywhere. Each op takes the backend lock, selects the device, opens an
// NVTX range and names itself for error messages, then calls the launchers of ops.cuh on the
// backend's stream. Host-side metadata (cu_seqlens, ids, positions) is copied to small device
// buffers from the caching allocator.
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "cublaslt.h"
#include "cuda_backend.h"
#include "memory.h"
#include "op_profile.h"
#include "ops.cuh"

namespace lmdr::cuda {

// ---- error plumbing shared by every CUDA source (declared in common.cuh) ----

static thread_local const char* t_current_op = "cuda";
const char* current_op() { return t_current_op; }

void throw_cuda_error(const char* call, cudaError_t err, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the next op can run
  std::string where = file;
  where = where.substr(where.find_last_of('/') + 1);
  throw Error(std::string(current_op()) + ": " + call + " failed: " + cudaGetErrorString(err) + " (CUDA error " +
              std::to_string(int(err)) + ", " + where + ":" + std::to_string(line) + ")");
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(kernel, err, file, line);
}

static bool sync_every_op() {
  static const bool on = [] {
    const char* v = std::getenv("LMDR_CUDA_SYNC");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

static int cublas_type(DType t, const char* op, const char* what) {
  switch (t) {
    case DType::F32: return 0;   // CUDA_R_32F
    case DType::F16: return 2;   // CUDA_R_16F
    case DType::BF16: return 14; // CUDA_R_16BF
    default: throw Error(std::string(op) + ": " + what + " has dtype " + dtype_name(t) + " (expected F32, F16 or BF16)");
  }
}

static bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device), alloc_(device) {
    LMDR_CUDA_CHECK(cudaSetDevice(device));
    LMDR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    name_ = "cuda:" + std::to_string(device);
  }

  std::string name() const override { return name_; }
  DType act_dtype() const override { return DType::BF16; }
  DType param_dtype() const override { return DType::F32; }

  // ---- memory ----
  void* raw_alloc(size_t bytes) override {
    // no Scope: an out-of-memory error should name the op that asked, not "alloc"
    LMDR_CUDA_CHECK(cudaSetDevice(device_));
    return alloc_.alloc(bytes);
  }
  void raw_free(void* p) override { alloc_.free(p); }

  void upload(Tensor& dst, const void* src, DType src_dtype) override {
    Scope s(*this, "upload");
    const int64_t n = dst.numel();
    if (n == 0) return;
    if (src_dtype == dst.dtype) {
      LMDR_CUDA_CHECK(cudaMemcpyAsync(dst.data, src, dst.bytes(), cudaMemcpyHostToDevice, stream_));
    } else {
      // stage the host bytes in chunks and convert on the device (F32/F16/F64 -> BF16 ...)
      const size_t es = dtype_size(src_dtype);
      const int64_t chunk = std::max<int64_t>(1, int64_t(64 << 20) / int64_t(es));
      Tensor staging = empty({std::min(chunk, n)}, src_dtype);
      for (int64_t off = 0; off < n; off += chunk) {
        int64_t m = std::min(chunk, n - off);
        LMDR_CUDA_CHECK(cudaMemcpyAsync(staging.data, static_cast<const char*>(src) + off * es, size_t(m) * es,
                                        cudaMemcpyHostToDevice, stream_));
        convert_forward(static_cast<char*>(dst.data) + off * dtype_size(dst.dtype), dst.dtype, staging.data,
                        src_dtype, m, stream_);
      }
    }
    // the caller may unmap or free src as soon as we return
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void download(void* dst, DType dst_dtype, const Tensor& src) override {
    Scope s(*this, "download");
    if (src.numel() == 0) return;
    if (dst_dtype == src.dtype) {
      LMDR_CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
    } else {
      Tensor tmp = empty(src.shape, dst_dtype);
      convert_forward(tmp.data, dst_dtype, src.data, src.dtype, src.numel(), stream_);
      LMDR_CUDA_CHECK(cudaMemcpyAsync(dst, tmp.data, tmp.bytes(), cudaMemcpyDeviceToHost, stream_));
    }
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (op_profile_enabled()) op_profile_collect();
  }

  void fill(Tensor& t, double value) override {
    Scope s(*this, "fill");
    fill_forward(t.data, t.dtype, t.numel(), value, stream_);
  }

  void copy(Tensor& dst, const Tensor& src) override {
    Scope s(*this, "copy");
    need(dst.numel() == src.numel() && dst.dtype == src.dtype, "copy", "dst " + desc(dst) + " vs src " + desc(src));
    if (dst.data != src.data && src.bytes())
      LMDR_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
  }

  void convert(Tensor& dst, const Tensor& src) override {
    Scope s(*this, "convert");
    need(dst.numel() == src.numel(), "convert", "dst " + desc(dst) + " vs src " + desc(src));
    if (dst.dtype == src.dtype) {
      if (dst.data != src.data && src.bytes())
        LMDR_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
      return;
    }
    convert_forward(dst.data, dst.dtype, src.data, src.dtype, src.numel(), stream_);
  }

  void synchronize() override {
    Scope s(*this, "synchronize");
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (op_profile_enabled()) op_profile_collect();
  }

  // layer ranges from the core; ops open their own (Scope)
  void range_push(const char* name) override { nvtxRangePushA(name); }
  void range_pop() override { nvtxRangePop(); }

  // ---- linear algebra ----
  void matmul(Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b, float alpha,
              float beta) override {
    Scope s(*this, "matmul");
    gemm(C, A, B, trans_a, trans_b, alpha, beta);
  }

  void add_bias(Tensor& y, const Tensor& bias) override {
    Scope s(*this, "add_bias");
    int64_t N = bias.numel();
    need(N > 0 && y.numel() % N == 0, "add_bias", "y " + desc(y) + ", bias " + desc(bias));
    add_bias_forward(y.data, y.dtype, bias.data, bias.dtype, y.numel() / N, N, stream_);
  }

  void bias_backward(Tensor& dbias, const Tensor& dy) override {
    Scope s(*this, "bias_backward");
    int64_t N = dbias.numel();
    need(N > 0 && dy.numel() % N == 0, "bias_backward", "dbias " + desc(dbias) + ", dy " + desc(dy));
    cuda::bias_backward(dbias.data, dbias.dtype, dy.data, dy.dtype, dy.numel() / N, N, stream_);
  }

  void add(Tensor& out, const Tensor& a, const Tensor& b) override {
    Scope s(*this, "add");
    add_forward(out.data, out.dtype, a.data, a.dtype, b.data, b.dtype, out.numel(), stream_);
  }

  void scale(Tensor& x, double sc) override {
    Scope s(*this, "scale");
    scale_forward(x.data, x.dtype, x.numel(), float(sc), stream_);
  }

  void axpy(Tensor& y, double a, const Tensor& x) override {
    Scope s(*this, "axpy");
    axpy_forward(y.data, y.dtype, float(a), x.data, x.dtype, y.numel(), stream_);
  }

  // ---- normalisation ----
  void rmsnorm_forward(Tensor& out, Tensor& rstd, const Tensor& x, const Tensor& w, double eps,
                       double w_offset) override {
    Scope s(*this, "rmsnorm_forward");
    int64_t H = w.numel(), T = rows_of(x, H, "rmsnorm_forward");
    cuda::rmsnorm_forward(out.data, out.dtype, rstd.data, rstd.dtype, x.data, x.dtype, w.data, w.dtype, T, H,
                          float(eps), float(w_offset), stream_);
  }

  void rmsnorm_backward(Tensor& dx, Tensor* dw, const Tensor& dout, const Tensor& x, const Tensor& w,
                        const Tensor& rstd, double w_offset) override {
    Scope s(*this, "rmsnorm_backward");
    int64_t H = w.numel(), T = rows_of(x, H, "rmsnorm_backward");
    bool has_dw = dw && dw->defined();
    cuda::rmsnorm_backward(dx.data, dx.dtype, has_dw ? dw->data : nullptr, has_dw ? dw->dtype : DType::F32, dout.data,
                           dout.dtype, x.data, x.dtype, w.data, w.dtype, rstd.data, rstd.dtype, T, H, float(w_offset),
                           stream_);
  }

  void layernorm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Tensor& w, const Tensor& b,
                         double eps) override {
    Scope s(*this, "layernorm_forward");
    int64_t H = w.numel(), T = rows_of(x, H, "layernorm_forward");
    cuda::layernorm_forward(out.data, out.dtype, mean.data, mean.dtype, rstd.data, rstd.dtype, x.data, x.dtype,
                            w.data, w.dtype, b.data, b.dtype, T, H, float(eps), stream_);
  }

  void layernorm_backward(Tensor& dx, Tensor* dw, Tensor* db, const Tensor& dout, const Tensor& x, const Tensor& w,
                          const Tensor& mean, const Tensor& rstd) override {
    Scope s(*this, "layernorm_backward");
    int64_t H = w.numel(), T = rows_of(x, H, "layernorm_backward");
    bool has_dw = dw && dw->defined(), has_db = db && db->defined();
    cuda::layernorm_backward(dx.data, dx.dtype, has_dw ? dw->data : nullptr, has_dw ? dw->dtype : DType::F32,
                             has_db ? db->data : nullptr, has_db ? db->dtype : DType::F32, dout.data, dout.dtype,
                             x.data, x.dtype, w.data, w.dtype, mean.data, mean.dtype, rstd.data, rstd.dtype, T, H,
                             stream_);
  }

  // ---- rotary embedding ----
  void rope_forward(Tensor& x, const std::vector<double>& inv_freq, const std::vector<int32_t>& cu_seqlens) override {
    Scope s(*this, "rope_forward");
    rope(x, inv_freq, cu_seqlens, false);
  }
  void rope_backward(Tensor& dx, const std::vector<double>& inv_freq,
                     const std::vector<int32_t>& cu_seqlens) override {
    Scope s(*this, "rope_backward");
    rope(dx, inv_freq, cu_seqlens, true);
  }

  // ---- attention ----
  void attention_forward(Tensor& out, Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         const std::vector<int32_t>& cu_seqlens, bool causal, double scale,
                         const AttentionMods& mods) override {
    Scope s(*this, "attention_forward");
    AttnShape a = attn_shape(q, k, v, cu_seqlens, "attention_forward");
    need(out.dtype == a.dtype && out.numel() == q.numel(), "attention_forward", "out " + desc(out) + " vs q " + desc(q));
    Tensor lse32 = f32_view_or_temp(lse, a.T * a.Hq, "attention_forward", "lse");
    Tensor cu = to_device(cu_seqlens);
    check_rel_bias(mods, q, cu_seqlens, "cuda: attention_forward");
    Tensor rel32 = rel_bias_f32(mods);
    cuda::attention_forward(out.data, lse32.ptr<float>(), q.data, k.data, v.data, a.dtype, cu.ptr<int32_t>(), a.B,
                            a.max_len, a.T, a.Hq, a.Hkv, a.D, causal, float(scale), mods.softcap, mods.window,
                            stream_, {rel32.ptr<float>(), nullptr, rel32.defined() ? (rel32.dim(0) + 1) / 2 : 0});
    if (lse32.data != lse.data) convert_forward(lse.data, lse.dtype, lse32.data, DType::F32, lse.numel(), stream_);
  }

  void attention_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q, const Tensor& k,
                          const Tensor& v, const Tensor& out, const Tensor& lse,
                          const std::vector<int32_t>& cu_seqlens, bool causal, double scale,
                          const AttentionMods& mods) override {
    Scope s(*this, "attention_backward");
    AttnShape a = attn_shape(q, k, v, cu_seqlens, "attention_backward");
    for (const Tensor* t : std::initializer_list<const Tensor*>{&dq, &dk, &dv, &dout, &out})
      need(t->dtype == a.dtype, "attention_backward", "all of q,k,v,out,dout,dq,dk,dv must share one dtype; got " +
                                                          desc(*t) + " with q " + desc(q));
    Tensor lse32 = lse;
    if (lse.dtype != DType::F32) {
      lse32 = empty(lse.shape, DType::F32);
      convert_forward(lse32.data, DType::F32, lse.data, lse.dtype, lse.numel(), stream_);
    }
    Tensor delta = empty({a.T, a.Hq}, DType::F32);
    Tensor cu = to_device(cu_seqlens);
    check_rel_bias(mods, q, cu_seqlens, "cuda: attention_backward");
    Tensor rel32 = rel_bias_f32(mods), drel32;
    if (rel32.defined() && mods.d_rel_bias) drel32 = zeros(rel32.shape, DType::F32);  // atomics add into it
    cuda::attention_backward(dq.data, dk.data, dv.data, delta.ptr<float>(), dout.data, q.data, k.data, v.data,
                             out.data, lse32.ptr<float>(), a.dtype, cu.ptr<int32_t>(), a.B, a.max_len, a.T, a.Hq,
                             a.Hkv, a.D, causal, float(scale), mods.softcap, mods.window, stream_,
                             {rel32.ptr<float>(), drel32.ptr<float>(), rel32.defined() ? (rel32.dim(0) + 1) / 2 : 0});
    if (drel32.defined())
      convert_forward(mods.d_rel_bias->data, mods.d_rel_bias->dtype, drel32.data, DType::F32, drel32.numel(), stream_);
  }

  // ---- activations ----
  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override {
    Scope s(*this, "swiglu_forward");
    cuda::swiglu_forward(out.data, out.dtype, gate.data, gate.dtype, up.data, up.dtype, out.numel(), stream_);
  }
  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    Scope s(*this, "swiglu_backward");
    cuda::swiglu_backward(dgate.data, dgate.dtype, dup.data, dup.dtype, dout.data, dout.dtype, gate.data, gate.dtype,
                          up.data, up.dtype, dout.numel(), stream_);
  }
  void gelu_forward(Tensor& out, const Tensor& x) override {
    Scope s(*this, "gelu_forward");
    cuda::gelu_forward(out.data, out.dtype, x.data, x.dtype, out.numel(), stream_);
  }
  void gelu_backward(Tensor& dx, const Tensor& dout, const Tensor& x) override {
    Scope s(*this, "gelu_backward");
    cuda::gelu_backward(dx.data, dx.dtype, dout.data, dout.dtype, x.data, x.dtype, dx.numel(), stream_);
  }
  void activation_forward(Tensor& out, const Tensor& x, Activation act) override {
    Scope s(*this, "activation_forward");
    cuda::activation_forward(out.data, out.dtype, x.data, x.dtype, out.numel(), int(act), stream_);
  }
  void activation_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activation act) override {
    Scope s(*this, "activation_backward");
    cuda::activation_backward(dx.data, dx.dtype, dout.data, dout.dtype, x.data, x.dtype, dx.numel(), int(act), stream_);
  }
  void gated_forward(Tensor& out, const Tensor& gate, const Tensor& up, Activation act) override {
    Scope s(*this, "gated_forward");
    cuda::gated_forward(out.data, out.dtype, gate.data, gate.dtype, up.data, up.dtype, out.numel(), int(act), stream_);
  }
  void gated_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up,
                      Activation act) override {
    Scope s(*this, "gated_backward");
    cuda::gated_backward(dgate.data, dgate.dtype, dup.data, dup.dtype, dout.data, dout.dtype, gate.data, gate.dtype,
                         up.data, up.dtype, dout.numel(), int(act), stream_);
  }

  // ---- column blocks, LM head ----
  void copy_columns(Tensor& dst, int64_t dst_col, const Tensor& src, int64_t src_col, int64_t ncols) override {
    Scope s(*this, "copy_columns");
    const int64_t Cd = dst.dim(-1), Cs = src.dim(-1), R = src.numel() / std::max<int64_t>(Cs, 1);
    need(dst.dtype == src.dtype && dst.numel() / std::max<int64_t>(Cd, 1) == R && dst_col >= 0 && src_col >= 0 &&
             dst_col + ncols <= Cd && src_col + ncols <= Cs,
         "copy_columns", std::to_string(ncols) + " columns from " + desc(src) + " to " + desc(dst));
    cuda::copy_columns(dst.data, Cd, dst_col, src.data, Cs, src_col, dst.dtype, R, ncols, stream_);
  }
  void logits_block_update(Tensor& logits, Tensor& run_max, Tensor& run_sum, Tensor& target,
                           const std::vector<int32_t>& targets, int64_t v0, double softcap) override {
    Scope s(*this, "logits_block_update");
    const int64_t N = int64_t(targets.size()), Vb = logits.dim(-1);
    need(logits.numel() == N * Vb && run_max.dtype == DType::F32 && run_sum.dtype == DType::F32 &&
             target.dtype == DType::F32 && run_max.numel() == N && run_sum.numel() == N && target.numel() == N,
         "logits_block_update", "logits " + desc(logits) + " with " + std::to_string(N) + " targets; state must be F32 [N]");
    Tensor d_targets = to_device(targets);
    cuda::logits_block_update(logits.data, logits.dtype, run_max.ptr<float>(), run_sum.ptr<float>(), target.ptr<float>(),
                              d_targets.ptr<int32_t>(), N, Vb, v0, float(softcap), stream_);
  }

  void dropout_forward(Tensor& out, const Tensor& x, double p, uint64_t seed,
                       const std::vector<uint64_t>& row_keys) override {
    Scope s(*this, "dropout_forward");
    dropout(out, x, p, seed, row_keys, "dropout_forward");
  }
  void dropout_backward(Tensor& dx, const Tensor& dout, double p, uint64_t seed,
                        const std::vector<uint64_t>& row_keys) override {
    Scope s(*this, "dropout_backward");
    dropout(dx, dout, p, seed, row_keys, "dropout_backward");
  }

  // ---- embeddings ----
  void embedding_forward(Tensor& out, const Tensor& table, const std::vector<int32_t>& ids,
                         bool accumulate) override {
    Scope s(*this, "embedding_forward");
    int64_t T = int64_t(ids.size()), H = table.dim(-1);
    need(out.numel() == T * H, "embedding_forward", "out " + desc(out) + " for " + std::to_string(T) + " ids");
    Tensor d_ids = to_device(ids);
    cuda::embedding_forward(out.data, out.dtype, table.data, table.dtype, d_ids.ptr<int32_t>(), T, H, accumulate,
                            stream_);
  }
  void embedding_backward(Tensor& dtable, const Tensor& dout, const std::vector<int32_t>& ids) override {
    Scope s(*this, "embedding_backward");
    int64_t T = int64_t(ids.size()), H = dtable.dim(-1);
    need(dout.numel() == T * H, "embedding_backward", "dout " + desc(dout) + " for " + std::to_string(T) + " ids");
    Tensor d_ids = to_device(ids);
    cuda::embedding_backward(dtable.data, dtable.dtype, dout.data, dout.dtype, d_ids.ptr<int32_t>(), T, H, stream_);
  }

  // ---- pooling ----
  void pool_forward(Tensor& out, const Tensor& h, const std::vector<int32_t>& cu_seqlens, Pooling mode) override {
    Scope s(*this, "pool_forward");
    int64_t B = int64_t(cu_seqlens.size()) - 1, H = h.dim(-1);
    need(B >= 0 && out.numel() == B * H, "pool_forward", "out " + desc(out) + " for " + std::to_string(B) + " sequences");
    Tensor cu = to_device(cu_seqlens);
    cuda::pool_forward(out.data, out.dtype, h.data, h.dtype, cu.ptr<int32_t>(), B, H, int(mode), false, stream_);
  }
  void pool_backward(Tensor& dh, const Tensor& dout, const std::vector<int32_t>& cu_seqlens, Pooling mode) override {
    Scope s(*this, "pool_backward");
    int64_t B = int64_t(cu_seqlens.size()) - 1, H = dh.dim(-1), T = dh.numel() / std::max<int64_t>(H, 1);
    Tensor cu = to_device(cu_seqlens);
    cuda::pool_backward(dh.data, dh.dtype, dout.data, dout.dtype, cu.ptr<int32_t>(), B, T, H, int(mode), stream_);
  }
  void l2normalize_forward(Tensor& y, const Tensor& x) override {
    Scope s(*this, "l2normalize_forward");
    int64_t H = x.dim(-1);
    cuda::l2normalize_forward(y.data, y.dtype, x.data, x.dtype, x.numel() / std::max<int64_t>(H, 1), H, stream_);
  }

  // ---- losses ----
  LossParts infonce_forward_backward(Tensor& dq, Tensor& dp, const Tensor& q, const Tensor& p,
                                     const LossSpec& spec) override {
    Scope s(*this, "infonce");
    int64_t B = q.dim(0), H = q.dim(-1), P = p.dim(0), group = spec.group;
    need(group > 0 && P == B * group && p.dim(-1) == H, "infonce",
         "q " + desc(q) + ", p " + desc(p) + ", group " + std::to_string(group));
    LossLayout lay = loss_layout(spec, B);
    Tensor q32 = as_f32(q), p32 = as_f32(p);
    Tensor dq32 = dq.dtype == DType::F32 ? dq : empty(dq.shape, DType::F32);
    Tensor dp32 = dp.dtype == DType::F32 ? dp : empty(dp.shape, DType::F32);
    Tensor work = empty({infonce_workspace_floats(B, P)}, DType::F32);
    Tensor parts = empty({2}, DType::F64);
    Tensor rank = to_device(lay.rank), rank_of = to_device(lay.rank_of);
    std::vector<float> w32(lay.weight.begin(), lay.weight.end());
    Tensor weight = to_device(w32);
    cuda::infonce_forward_backward(dq32.ptr<float>(), dp32.ptr<float>(), parts.ptr<double>(), q32.ptr<float>(),
                                   p32.ptr<float>(), B, P, H, group, float(spec.temperature), spec.cosine,
                                   spec.in_batch, int(spec.distill), float(spec.contrastive_weight),
                                   float(spec.distill_weight), float(spec.student_temperature),
                                   rank.ptr<int32_t>(), rank_of.ptr<int32_t>(),
                                   w32.empty() ? nullptr : static_cast<const float*>(weight.data), work.ptr<float>(),
                                   stream_);
    if (dq32.data != dq.data) convert_forward(dq.data, dq.dtype, dq32.data, DType::F32, dq.numel(), stream_);
    if (dp32.data != dp.data) convert_forward(dp.data, dp.dtype, dp32.data, DType::F32, dp.numel(), stream_);
    double result[2] = {0, 0};
    LMDR_CUDA_CHECK(cudaMemcpyAsync(result, parts.data, 2 * sizeof(double), cudaMemcpyDeviceToHost, stream_));
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    LossParts out;
    out.contrastive = result[0];
    out.distill = spec.distill == Distill::None ? 0 : result[1];
    out.loss = spec.contrastive_weight * out.contrastive + spec.distill_weight * out.distill;
    return out;
  }

  // ---- optimisers ----
  double sum_squares(const Tensor& x) override {
    Scope s(*this, "sum_squares");
    Tensor acc = empty({1}, DType::F64);
    cuda::sum_squares(acc.ptr<double>(), x.data, x.dtype, x.numel(), stream_);
    double result = 0;
    LMDR_CUDA_CHECK(cudaMemcpyAsync(&result, acc.data, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return result;
  }

  void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                  double eps, double weight_decay, int64_t step, double grad_scale) override {
    Scope s(*this, "adamw_step");
    need(step >= 1, "adamw_step", "step must be >= 1");
    need(m.numel() == param.numel() && v.numel() == param.numel() && grad.numel() == param.numel(), "adamw_step",
         "param " + desc(param) + ", grad " + desc(grad) + ", m " + desc(m) + ", v " + desc(v));
    cuda::adamw_step(param.data, param.dtype, grad.data, grad.dtype, m.data, m.dtype, v.data, v.dtype, param.numel(),
                     lr, beta1, beta2, eps, weight_decay, step, grad_scale, stream_);
  }

  void sgd_step(Tensor& param, const Tensor& grad, double lr, double weight_decay, double grad_scale) override {
    Scope s(*this, "sgd_step");
    cuda::sgd_step(param.data, param.dtype, grad.data, grad.dtype, param.numel(), lr, weight_decay, grad_scale,
                   stream_);
  }

  // ---- exact top-k ----
  void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const Tensor& queries, const Tensor& corpus,
                  int64_t base_id) override {
    Scope s(*this, "topk_merge");
    int64_t Q = queries.dim(0), H = queries.dim(-1), N = corpus.dim(0);
    need(corpus.dim(-1) == H, "topk_merge", "queries " + desc(queries) + " vs corpus " + desc(corpus));
    need(k >= 1 && k <= topk_max_k(), "topk_merge",
         "k = " + std::to_string(k) + " (the CUDA top-k supports 1.." + std::to_string(topk_max_k()) + ")");
    if (Q == 0) return;
    // the running best lives on the device for the whole block
    Tensor best_s = empty({Q, k}, DType::F32), best_i = empty({Q, k}, DType::I64);
    LMDR_CUDA_CHECK(cudaMemcpyAsync(best_s.data, best_scores, best_s.bytes(), cudaMemcpyHostToDevice, stream_));
    LMDR_CUDA_CHECK(cudaMemcpyAsync(best_i.data, best_ids, best_i.bytes(), cudaMemcpyHostToDevice, stream_));
    // one GEMM dtype: queries follow the corpus (bf16 corpora stay bf16 on the device)
    Tensor qs = queries;
    if (queries.dtype != corpus.dtype) {
      qs = empty(queries.shape, corpus.dtype);
      convert_forward(qs.data, qs.dtype, queries.data, queries.dtype, queries.numel(), stream_);
    }
    Tensor nan_flag = zeros({1}, DType::I32);
    // score tiles of at most 64M floats (256 MiB): [qb, nb]
    const int64_t nb = std::min<int64_t>(N, 32768);
    const int64_t qb = std::max<int64_t>(1, std::min<int64_t>(Q, (int64_t(64) << 20) / std::max<int64_t>(nb, 1)));
    Tensor tile = empty({qb, nb}, DType::F32);
    for (int64_t n0 = 0; n0 < N; n0 += nb) {
      int64_t nn = std::min(nb, N - n0);
      Tensor cblock = corpus.rows(n0, n0 + nn).view({nn, H});
      for (int64_t q0 = 0; q0 < Q; q0 += qb) {
        int64_t qq = std::min(qb, Q - q0);
        Tensor qblock = qs.rows(q0, q0 + qq).view({qq, H});
        Tensor scores = tile;  // the tile's storage viewed as [qq, nn]
        scores.shape = {qq, nn};
        gemm(scores, qblock, cblock, false, true, 1.f, 0.f);
        topk_merge_tile(best_s.ptr<float>() + q0 * k, best_i.ptr<int64_t>() + q0 * k, k, scores.ptr<float>(), qq, nn,
                        nn, base_id + n0, nan_flag.ptr<int>(), stream_);
      }
    }
    int nan_seen = 0;
    LMDR_CUDA_CHECK(cudaMemcpyAsync(&nan_seen, nan_flag.data, sizeof(int), cudaMemcpyDeviceToHost, stream_));
    LMDR_CUDA_CHECK(cudaMemcpyAsync(best_scores, best_s.data, best_s.bytes(), cudaMemcpyDeviceToHost, stream_));
    LMDR_CUDA_CHECK(cudaMemcpyAsync(best_ids, best_i.data, best_i.bytes(), cudaMemcpyDeviceToHost, stream_));
    LMDR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (nan_seen)
      throw Error("topk_merge: NaN score between a query and corpus rows " + std::to_string(base_id) + ".." +
                  std::to_string(base_id + N - 1) + " (the embeddings contain NaN)");
  }

 private:
  // One per op: lock, device, NVTX range, op name for errors; LMDR_CUDA_SYNC=1 syncs after it.
  class Scope {
   public:
    Scope(CudaBackend& be, const char* op) : be_(be), lock_(be.mutex_), prev_(t_current_op), range_(op) {
      t_current_op = op;
      LMDR_CUDA_CHECK(cudaSetDevice(be.device_));
      if (op_profile_enabled()) op_profile_begin(op, be.stream_);
    }
    ~Scope() noexcept(false) {
      if (op_profile_enabled()) op_profile_end(be_.stream_);
      if (sync_every_op() && std::uncaught_exceptions() == 0) {
        cudaError_t err = cudaStreamSynchronize(be_.stream_);
        if (err != cudaSuccess) {
          try {
            throw_cuda_error("cudaStreamSynchronize (LMDR_CUDA_SYNC=1)", err, __FILE__, __LINE__);
          } catch (...) {
            t_current_op = prev_;
            throw;
          }
        }
      }
      t_current_op = prev_;
    }

   private:
    CudaBackend& be_;
    std::lock_guard<std::recursive_mutex> lock_;
    const char* prev_;
    NvtxRange range_;
  };

  struct AttnShape {
    DType dtype;
    int64_t T, Hq, Hkv, D, B, max_len;
  };

  static std::string desc(const Tensor& t) { return t.shape_str() + " " + dtype_name(t.dtype); }
  static void need(bool ok, const char* op, const std::string& what) {
    if (!ok) throw Error(std::string(op) + ": " + what);
  }
  static int64_t rows_of(const Tensor& x, int64_t H, const char* op) {
    need(H > 0 && x.numel() % H == 0, op, "x " + desc(x) + " does not split into rows of " + std::to_string(H));
    return x.numel() / H;
  }

  template <typename T>
  Tensor to_device(const std::vector<T>& v) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "int32 or 64-bit metadata");
    Tensor t = empty({int64_t(v.size())}, sizeof(T) == 4 ? DType::I32 : DType::I64);
    if (!v.empty())
      LMDR_CUDA_CHECK(cudaMemcpyAsync(t.data, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
    return t;
  }

  Tensor as_f32(const Tensor& x) {
    if (x.dtype == DType::F32) return x;
    Tensor t = empty(x.shape, DType::F32);
    convert_forward(t.data, DType::F32, x.data, x.dtype, x.numel(), stream_);
    return t;
  }

  // AttentionMods::rel_bias as fp32 for the kernels (undefined without one)
  Tensor rel_bias_f32(const AttentionMods& m) {
    if (!m.rel_bias || m.rel_bias->dtype == DType::F32) return m.rel_bias ? *m.rel_bias : Tensor();
    Tensor t = empty(m.rel_bias->shape, DType::F32);
    convert_forward(t.data, DType::F32, m.rel_bias->data, m.rel_bias->dtype, t.numel(), stream_);
    return t;
  }

  Tensor f32_view_or_temp(Tensor& t, int64_t n, const char* op, const char* what) {
    need(t.numel() == n, op, std::string(what) + " " + desc(t) + " should have " + std::to_string(n) + " elements");
    return t.dtype == DType::F32 ? t : empty(t.shape, DType::F32);
  }

  AttnShape attn_shape(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int32_t>& cu,
                       const char* op) {
    need(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, op,
         "q, k, v must be [T, heads, D]; got q " + desc(q) + ", k " + desc(k) + ", v " + desc(v));
    AttnShape a{q.dtype, q.dim(0), q.dim(1), k.dim(1), q.dim(2), int64_t(cu.size()) - 1, 0};
    need(k.dim(0) == a.T && v.dim(0) == a.T && k.dim(2) == a.D && v.shape == k.shape, op,
         "q " + desc(q) + ", k " + desc(k) + ", v " + desc(v));
    need(a.Hkv > 0 && a.Hq % a.Hkv == 0, op, "query heads must be a multiple of kv heads");
    need(k.dtype == a.dtype && v.dtype == a.dtype && (a.dtype == DType::BF16 || a.dtype == DType::F32), op,
         "q, k, v must share one dtype, BF16 or F32");
    need(attention_supports_head_dim(a.D), op, "head dim " + std::to_string(a.D) + " is not supported (even, <= 256)");
    need(a.B >= 0 && !cu.empty() && cu.front() == 0 && cu.back() == a.T, op, "cu_seqlens must run from 0 to T");
    for (int64_t b = 0; b < a.B; b++) a.max_len = std::max<int64_t>(a.max_len, cu[b + 1] - cu[b]);
    return a;
  }

  void rope(Tensor& x, const std::vector<double>& inv_freq, const std::vector<int32_t>& cu_seqlens, bool inverse) {
    const char* op = inverse ? "rope_backward" : "rope_forward";
    int64_t half = int64_t(inv_freq.size()), D = x.dim(-1), T = x.dim(0);
    need(x.ndim() == 3 && half > 0 && 2 * half <= D, op, "x " + desc(x) + " [T,heads,D] with " + std::to_string(half) +
                                                           " rotary frequencies (1 to D/2)");
    if (T == 0) return;
    int64_t heads = x.dim(1);
    std::vector<int32_t> pos(size_t(T), 0);
    for (size_t b = 0; b + 1 < cu_seqlens.size(); b++)
      for (int32_t t = cu_seqlens[b]; t < cu_seqlens[b + 1] && t < T; t++) pos[size_t(t)] = t - cu_seqlens[b];
    std::vector<float> f(inv_freq.begin(), inv_freq.end());  // HF keeps inv_freq in float32
    Tensor d_pos = to_device(pos), d_f = to_device(f);
    if (inverse) cuda::rope_backward(x.data, x.dtype, d_pos.ptr<int32_t>(), d_f.ptr<float>(), T, heads, D, half, stream_);
    else cuda::rope_forward(x.data, x.dtype, d_pos.ptr<int32_t>(), d_f.ptr<float>(), T, heads, D, half, stream_);
  }

  void dropout(Tensor& out, const Tensor& x, double p, uint64_t seed, const std::vector<uint64_t>& row_keys,
               const char* op) {
    int64_t T = int64_t(row_keys.size());
    need(T > 0 ? x.numel() % T == 0 : x.numel() == 0, op, "x " + desc(x) + " for " + std::to_string(T) + " row keys");
    if (T == 0) return;
    Tensor keys = to_device(row_keys);
    cuda::dropout_forward(out.data, out.dtype, x.data, x.dtype, T, x.numel() / T, p, seed,
                          static_cast<const uint64_t*>(keys.data), stream_);
  }

  CublasLt& lt() {
    if (!lt_) lt_ = std::make_unique<CublasLt>();
    return *lt_;
  }
  void* workspace() {
    if (!workspace_.defined()) workspace_ = empty({kWorkspaceBytes / 4}, DType::I32);  // raw bytes
    return workspace_.data;
  }

  // C = alpha op(A) op(B) + beta C; 2-D views (leading dim x the rest), dtypes checked.
  void gemm(Tensor& C, const Tensor& A, const Tensor& B, bool trans_a, bool trans_b, float alpha, float beta) {
    auto dims = [](const Tensor& t) {
      int64_t r = t.ndim() ? t.dim(0) : 1;
      return std::pair<int64_t, int64_t>{r, r ? t.numel() / r : 0};
    };
    auto [ar, ac] = dims(A);
    auto [br, bc] = dims(B);
    int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
    int64_t K2 = trans_b ? bc : br, N = trans_b ? br : bc;
    need(K == K2 && C.numel() == M * N, "matmul",
         "C " + desc(C) + " = op(A " + desc(A) + ") op(B " + desc(B) + ") with trans_a=" + std::to_string(trans_a) +
             " trans_b=" + std::to_string(trans_b) + ": shapes do not chain");
    if (M == 0 || N == 0) return;
    if (K == 0) {  // C = beta * C
      if (beta == 0.f) fill_forward(C.data, C.dtype, C.numel(), 0.0, stream_);
      else scale_forward(C.data, C.dtype, C.numel(), beta, stream_);
      return;
    }
    bool same_in = A.dtype == B.dtype && is_float(A.dtype);
    bool direct = same_in && (C.dtype == A.dtype || (C.dtype == DType::F32 && A.dtype != DType::F32));
    if (!direct) {  // rare mixed dtypes: do it in fp32
      need(is_float(A.dtype) && is_float(B.dtype) && is_float(C.dtype), "matmul",
           "float tensors expected, got A " + desc(A) + ", B " + desc(B) + ", C " + desc(C));
      Tensor a32 = as_f32(A), b32 = as_f32(B);
      Tensor c32 = C.dtype == DType::F32 ? C : empty(C.shape, DType::F32);
      if (c32.data != C.data && beta != 0.f) convert_forward(c32.data, DType::F32, C.data, C.dtype, C.numel(), stream_);
      gemm(c32, a32, b32, trans_a, trans_b, alpha, beta);
      if (c32.data != C.data) convert_forward(C.data, C.dtype, c32.data, DType::F32, C.numel(), stream_);
      return;
    }
    GemmArgs g{};
    g.C = C.data;
    g.A = A.data;
    g.B = B.data;
    g.a_type = cublas_type(A.dtype, "matmul", "A");
    g.b_type = cublas_type(B.dtype, "matmul", "B");
    g.c_type = cublas_type(C.dtype, "matmul", "C");
    g.M = M, g.N = N, g.K = K;
    g.lda = ac, g.ldb = bc, g.ldc = N;
    g.trans_a = trans_a, g.trans_b = trans_b;
    g.alpha = alpha, g.beta = beta;
    lt().gemm(g, workspace(), size_t(kWorkspaceBytes), stream_);
  }

  static constexpr int64_t kWorkspaceBytes = 32 << 20;  // cuBLASLt workspace

  int device_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator alloc_;
  std::recursive_mutex mutex_;
  std::unique_ptr<CublasLt> lt_;
  Tensor workspace_;
};

}  // namespace lmdr::cuda

namespace lmdr {

Backend* cuda_backend(int device_index) {
  static std::mutex mutex;
  static std::vector<Backend*> backends;  // never destroyed: process exit tears the driver down first
  std::lock_guard<std::mutex> lock(mutex);
  if (device_index < 0) throw Error("cuda:" + std::to_string(device_index) + ": no such device");
  if (size_t(device_index) >= backends.size()) backends.resize(size_t(device_index) + 1, nullptr);
  if (!backends[size_t(device_index)]) backends[size_t(device_index)] = new cuda::CudaBackend(device_index);
  return backends[size_t(device_index)];
}

}  // namespace lmdr
