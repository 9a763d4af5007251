// Decoder LLM graph (qwen2 / llama / mistral): token embedding, pre-norm blocks of RMSNorm ->
// GQA causal attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual, final RMSNorm.
#include <cmath>

#include "core/model.h"
#include "core/rope_freq.h"

namespace lmdr {

namespace {

struct DecoderLayer {
  Param* input_norm;
  Linear *q, *k, *v, *o;
  Param* post_norm;
  Linear *gate, *up, *down;
};

struct DecoderLayerActs : Activations {
  Tensor n1, rstd1;           // input norm out [T,H], [T]
  Tensor q, k, v;             // [T,Hq*D] (after RoPE), [T,Hkv*D] x2
  Tensor attn, lse;           // [T,Hq*D], [T,Hq]
  Tensor h1, n2, rstd2;       // residual after attention [T,H], post norm out, [T]
  Tensor gate, up, act;       // [T,I] x3: act = silu(gate) * up
  LinearActs lq, lk, lv, lo, lgate, lup, ldown;
};

struct FinalNormActs : Activations {
  Tensor rstd;  // [T]
};

class DecoderModel : public Model {
 public:
  DecoderModel(const ModelConfig& c, Backend* be) : Model(c, be) {
    inv_freq_ = rope_inv_freq(c.head_dim, c.rope_theta, c.rope_scaling);
    const int64_t H = c.hidden, q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim, I = c.intermediate;
    embed_ = add_param("embed_tokens.weight", {c.vocab, H});
    for (int64_t i = 0; i < c.layers; i++) {
      const std::string p = "layers." + std::to_string(i) + ".";
      DecoderLayer L;
      L.input_norm = add_param(p + "input_layernorm.weight", {H});
      L.q = add_linear(p + "self_attn.q_proj", H, q, c.qkv_bias);
      L.k = add_linear(p + "self_attn.k_proj", H, kv, c.qkv_bias);
      L.v = add_linear(p + "self_attn.v_proj", H, kv, c.qkv_bias);
      L.o = add_linear(p + "self_attn.o_proj", q, H, false);
      L.post_norm = add_param(p + "post_attention_layernorm.weight", {H});
      L.gate = add_linear(p + "mlp.gate_proj", H, I, false);
      L.up = add_linear(p + "mlp.up_proj", H, I, false);
      L.down = add_linear(p + "mlp.down_proj", I, H, false);
      layers_.push_back(L);
    }
    final_norm_ = add_param("norm.weight", {H});
  }

 protected:
  DType stat_dtype() const { return be_->act_dtype() == DType::F64 ? DType::F64 : DType::F32; }

  void norm_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Param& w, const Tensor& rstd) {
    be_->rmsnorm_backward(dx, w.trainable ? &w.grad : nullptr, dout, x, w.value, rstd);
  }

  std::unique_ptr<Activations> embed_forward(Tensor& h, const Batch& b, bool) override {
    be_->embedding_forward(h, embed_->value, b.ids, false);
    return nullptr;
  }

  void embed_backward(const Tensor& dh, const Batch& b, Activations*) override {
    if (embed_->trainable) be_->embedding_backward(embed_->grad, dh, b.ids);
  }

  std::unique_ptr<Activations> layer_forward(int i, Tensor& out, const Tensor& x, const Batch& b,
                                             bool keep) override {
    const DecoderLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, I = c.intermediate;
    auto a = std::make_unique<DecoderLayerActs>();
    Backend& be = *be_;
    a->n1 = be.empty({T, H});
    a->rstd1 = be.empty({T}, stat_dtype());
    be.rmsnorm_forward(a->n1, a->rstd1, x, L.input_norm->value, c.norm_eps);
    a->q = be.empty({T, c.heads * D});
    a->k = be.empty({T, c.kv_heads * D});
    a->v = be.empty({T, c.kv_heads * D});
    L.q->forward(be, a->q, a->n1, b, keep ? &a->lq : nullptr);
    L.k->forward(be, a->k, a->n1, b, keep ? &a->lk : nullptr);
    L.v->forward(be, a->v, a->n1, b, keep ? &a->lv : nullptr);
    Tensor q3 = a->q.view({T, c.heads, D}), k3 = a->k.view({T, c.kv_heads, D}), v3 = a->v.view({T, c.kv_heads, D});
    be.rope_forward(q3, inv_freq_, b.cu_seqlens);
    be.rope_forward(k3, inv_freq_, b.cu_seqlens);
    a->attn = be.empty({T, c.heads * D});
    a->lse = be.empty({T, c.heads}, stat_dtype());
    Tensor attn3 = a->attn.view({T, c.heads, D});
    be.attention_forward(attn3, a->lse, q3, k3, v3, b.cu_seqlens, true, 1.0 / std::sqrt(double(D)));
    Tensor o = be.empty({T, H});
    L.o->forward(be, o, a->attn, b, keep ? &a->lo : nullptr);
    a->h1 = be.empty({T, H});
    be.add(a->h1, x, o);
    a->n2 = be.empty({T, H});
    a->rstd2 = be.empty({T}, stat_dtype());
    be.rmsnorm_forward(a->n2, a->rstd2, a->h1, L.post_norm->value, c.norm_eps);
    a->gate = be.empty({T, I});
    a->up = be.empty({T, I});
    L.gate->forward(be, a->gate, a->n2, b, keep ? &a->lgate : nullptr);
    L.up->forward(be, a->up, a->n2, b, keep ? &a->lup : nullptr);
    a->act = be.empty({T, I});
    be.swiglu_forward(a->act, a->gate, a->up);
    Tensor d = be.empty({T, H});
    L.down->forward(be, d, a->act, b, keep ? &a->ldown : nullptr);
    be.add(out, a->h1, d);
    if (!keep) return nullptr;
    return a;
  }

  void layer_backward(int i, Tensor& dx, const Tensor& dout, const Tensor& x, const Batch& b,
                      Activations& acts) override {
    const DecoderLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    auto& a = static_cast<DecoderLayerActs&>(acts);
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, I = c.intermediate;
    Backend& be = *be_;
    // MLP: out = h1 + down(silu(gate(n2)) * up(n2))
    Tensor dact = be.empty({T, I});
    L.down->backward(be, &dact, false, dout, a.act, b, a.ldown);
    Tensor dgate = be.empty({T, I}), dup = be.empty({T, I});
    be.swiglu_backward(dgate, dup, dact, a.gate, a.up);
    dact = Tensor();
    Tensor dn2 = be.empty({T, H});
    L.gate->backward(be, &dn2, false, dgate, a.n2, b, a.lgate);
    L.up->backward(be, &dn2, true, dup, a.n2, b, a.lup);
    Tensor dh1 = be.empty({T, H});
    norm_backward(dh1, dn2, a.h1, *L.post_norm, a.rstd2);
    be.axpy(dh1, 1.0, dout);  // residual
    // attention: h1 = x + o(attn(rope(q(n1)), rope(k(n1)), v(n1)))
    Tensor dattn = be.empty({T, c.heads * D});
    L.o->backward(be, &dattn, false, dh1, a.attn, b, a.lo);
    Tensor dq = be.empty({T, c.heads * D}), dk = be.empty({T, c.kv_heads * D}), dv = be.empty({T, c.kv_heads * D});
    Tensor dq3 = dq.view({T, c.heads, D}), dk3 = dk.view({T, c.kv_heads, D}), dv3 = dv.view({T, c.kv_heads, D});
    be.attention_backward(dq3, dk3, dv3, dattn.view({T, c.heads, D}), a.q.view({T, c.heads, D}),
                          a.k.view({T, c.kv_heads, D}), a.v.view({T, c.kv_heads, D}), a.attn.view({T, c.heads, D}),
                          a.lse, b.cu_seqlens, true, 1.0 / std::sqrt(double(D)));
    dattn = Tensor();
    be.rope_backward(dq3, inv_freq_, b.cu_seqlens);
    be.rope_backward(dk3, inv_freq_, b.cu_seqlens);
    Tensor dn1 = be.empty({T, H});
    L.q->backward(be, &dn1, false, dq, a.n1, b, a.lq);
    L.k->backward(be, &dn1, true, dk, a.n1, b, a.lk);
    L.v->backward(be, &dn1, true, dv, a.n1, b, a.lv);
    norm_backward(dx, dn1, x, *L.input_norm, a.rstd1);
    be.axpy(dx, 1.0, dh1);  // residual
  }

  std::unique_ptr<Activations> head_forward(Tensor& out, const Tensor& x, bool keep) override {
    auto a = std::make_unique<FinalNormActs>();
    a->rstd = be_->empty({x.dim(0)}, stat_dtype());
    be_->rmsnorm_forward(out, a->rstd, x, final_norm_->value, config_.norm_eps);
    if (!keep) return nullptr;
    return a;
  }

  void head_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activations* acts) override {
    norm_backward(dx, dout, x, *final_norm_, static_cast<FinalNormActs*>(acts)->rstd);
  }

 private:
  std::vector<double> inv_freq_;
  Param* embed_ = nullptr;
  Param* final_norm_ = nullptr;
  std::vector<DecoderLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_decoder(const ModelConfig& config, Backend* backend) {
  return std::make_unique<DecoderModel>(config, backend);
}

}  // namespace lmdr
