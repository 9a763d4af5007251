// The decoder LLM graph, one for every decoder architecture: token embedding (optionally
// scaled), blocks of norm -> GQA causal attention with RoPE -> residual, norm -> MLP ->
// residual, final norm. What differs between architectures is data in ModelConfig, read here:
//   qwen2/llama/mistral  RMSNorm, separate q/k/v (qwen2: q/k/v biases), SwiGLU
//   qwen3                + per-head RMSNorm of q and k before RoPE (q_norm, k_norm)
//   gemma                RMSNorm with (1 + w), embeddings times sqrt(hidden), GeGLU (tanh GELU)
//   gemma2               gemma + post-attention / pre- and post-feed-forward norms, attention
//                        soft-capping, query_pre_attn_scalar, sliding window on some layers
//   phi                  one LayerNorm feeding attention and MLP in parallel, partial rotary,
//                        biases, fc1 -> tanh GELU -> fc2, final_layernorm
//   phi3                 fused qkv_proj and gate_up_proj
// Module names follow each architecture's Hugging Face modeling file (they are the PEFT names).
#include <cmath>

#include "core/model.h"
#include "core/rope_freq.h"

namespace lmdr {

namespace {

// A norm's parameters: RMSNorm (weight) or LayerNorm (weight, bias).
struct Norm {
  Param* w = nullptr;
  Param* b = nullptr;
};

struct NormActs {
  Tensor mean, rstd;  // [rows]; mean only for LayerNorm
};

struct DecoderLayer {
  Norm input_norm, norm2;             // norm2: before the MLP (absent when parallel)
  Norm post_attn, post_ff;            // gemma2 sandwich norms
  Param *q_norm = nullptr, *k_norm = nullptr;  // qwen3, [head_dim]
  Linear *q = nullptr, *k = nullptr, *v = nullptr, *qkv = nullptr, *o = nullptr;
  Linear *gate = nullptr, *up = nullptr, *gate_up = nullptr, *down = nullptr;  // gated MLP
  Linear *fc1 = nullptr, *fc2 = nullptr;                                       // plain MLP
  AttentionMods mods;
};

struct MlpActs {
  Tensor gate_up;        // fused [T,2I] (phi3), or the gate/up split of it
  Tensor gate, up, act;  // [T,I]: act = act(gate) * up, or (plain MLP) gate = fc1 out, act = act(gate)
  LinearActs lgate, lup, lgate_up, ldown;
};

struct DecoderLayerActs : Activations {
  Tensor n1;                   // input norm out [T,H]
  NormActs s1;
  Tensor qkv;                  // fused projection out [T, q+2kv] (phi3)
  Tensor q_pre, k_pre;         // q/k before q_norm/k_norm (qwen3)
  NormActs sq, sk;             // their statistics [T*heads]
  Tensor q, k, v;              // [T,Hq*D] (after RoPE), [T,Hkv*D] x2
  Tensor attn, lse;            // [T,Hq*D], [T,Hq]
  Tensor o;                    // o_proj out [T,H] (input of the gemma2 post-attention norm)
  NormActs so;
  Tensor h1, n2;               // residual after attention [T,H], pre-MLP norm out
  NormActs s2;
  Tensor m;                    // MLP out [T,H] (input of the gemma2 post-feed-forward norm)
  NormActs sm;
  MlpActs mlp;
  LinearActs lq, lk, lv, lqkv, lo;
};

struct FinalNormActs : Activations {
  NormActs s;
};

class DecoderModel : public Model {
 public:
  DecoderModel(const ModelConfig& c, Backend* be) : Model(c, be) {
    const int64_t rot = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
    inv_freq_ = rope_inv_freq(rot, c.rope_theta, c.rope_scaling);
    const int64_t H = c.hidden, q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim, I = c.intermediate;
    const bool phi = c.parallel_block;  // phi's names: self_attn.dense, mlp.fc1/fc2, final_layernorm
    embed_ = add_param("embed_tokens.weight", {c.vocab, H});
    for (int64_t i = 0; i < c.layers; i++) {
      const std::string p = "layers." + std::to_string(i) + ".";
      DecoderLayer L;
      L.input_norm = add_norm(p + "input_layernorm");
      if (c.fused_qkv) {
        L.qkv = add_linear(p + "self_attn.qkv_proj", H, q + 2 * kv, c.qkv_bias);
      } else {
        L.q = add_linear(p + "self_attn.q_proj", H, q, c.qkv_bias);
        L.k = add_linear(p + "self_attn.k_proj", H, kv, c.qkv_bias);
        L.v = add_linear(p + "self_attn.v_proj", H, kv, c.qkv_bias);
      }
      if (c.qk_norm) {
        L.q_norm = add_param(p + "self_attn.q_norm.weight", {c.head_dim});
        L.k_norm = add_param(p + "self_attn.k_norm.weight", {c.head_dim});
      }
      L.o = add_linear(p + (phi ? "self_attn.dense" : "self_attn.o_proj"), q, H, c.o_bias);
      if (c.sandwich_norms) {
        L.post_attn = add_norm(p + "post_attention_layernorm");
        L.norm2 = add_norm(p + "pre_feedforward_layernorm");
        L.post_ff = add_norm(p + "post_feedforward_layernorm");
      } else if (!c.parallel_block) {
        L.norm2 = add_norm(p + "post_attention_layernorm");
      }
      if (!c.gated_mlp) {
        L.fc1 = add_linear(p + "mlp.fc1", H, I, c.mlp_bias);
        L.fc2 = add_linear(p + "mlp.fc2", I, H, c.mlp_bias);
      } else if (c.fused_gate_up) {
        L.gate_up = add_linear(p + "mlp.gate_up_proj", H, 2 * I, c.mlp_bias);
        L.down = add_linear(p + "mlp.down_proj", I, H, c.mlp_bias);
      } else {
        L.gate = add_linear(p + "mlp.gate_proj", H, I, c.mlp_bias);
        L.up = add_linear(p + "mlp.up_proj", H, I, c.mlp_bias);
        L.down = add_linear(p + "mlp.down_proj", I, H, c.mlp_bias);
      }
      L.mods.softcap = c.attn_softcap;
      if (!c.sliding_layers.empty() && c.sliding_layers[size_t(i)]) L.mods.window = c.sliding_window;
      layers_.push_back(L);
    }
    final_norm_ = add_norm(c.norm == ModelConfig::Norm::Layer ? "final_layernorm" : "norm");
  }

 protected:
  DType stat_dtype() const { return be_->act_dtype() == DType::F64 ? DType::F64 : DType::F32; }
  double attn_scale() const {
    return config_.attn_scale > 0 ? config_.attn_scale : 1.0 / std::sqrt(double(config_.head_dim));
  }

  Norm add_norm(const std::string& module) {
    Norm n;
    n.w = add_param(module + ".weight", {config_.hidden});
    if (config_.norm == ModelConfig::Norm::Layer) n.b = add_param(module + ".bias", {config_.hidden});
    return n;
  }

  void norm_forward(Tensor& out, NormActs& s, const Tensor& x, const Norm& n) {
    s.rstd = be_->empty({x.dim(0)}, stat_dtype());
    if (n.b) {
      s.mean = be_->empty({x.dim(0)}, stat_dtype());
      be_->layernorm_forward(out, s.mean, s.rstd, x, n.w->value, n.b->value, config_.norm_eps);
    } else {
      be_->rmsnorm_forward(out, s.rstd, x, n.w->value, config_.norm_eps, config_.norm_offset);
    }
  }

  void norm_backward(Tensor& dx, const Tensor& dout, const Tensor& x, const Norm& n, const NormActs& s) {
    Param& w = *n.w;
    if (n.b) {
      const bool train = w.trainable;  // weight and bias train together (full mode)
      be_->layernorm_backward(dx, train ? &w.grad : nullptr, train ? &n.b->grad : nullptr, dout, x, w.value, s.mean,
                              s.rstd);
    } else {
      be_->rmsnorm_backward(dx, w.trainable ? &w.grad : nullptr, dout, x, w.value, s.rstd, config_.norm_offset);
    }
  }

  // Per-head RMSNorm of x[T, heads*D] (qwen3): rows of D, weight [D].
  void head_norm_forward(Tensor& out, NormActs& s, const Tensor& x, Param* w, int64_t heads) {
    const int64_t rows = x.dim(0) * heads, D = config_.head_dim;
    s.rstd = be_->empty({rows}, stat_dtype());
    Tensor o = out.view({rows, D});
    be_->rmsnorm_forward(o, s.rstd, x.view({rows, D}), w->value, config_.norm_eps, config_.norm_offset);
  }
  void head_norm_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Param* w, const NormActs& s,
                          int64_t heads) {
    const int64_t rows = x.dim(0) * heads, D = config_.head_dim;
    Tensor d = dx.view({rows, D});
    be_->rmsnorm_backward(d, w->trainable ? &w->grad : nullptr, dout.view({rows, D}), x.view({rows, D}), w->value,
                          s.rstd, config_.norm_offset);
  }

  std::unique_ptr<Activations> embed_forward(Tensor& h, const Batch& b, bool) override {
    be_->embedding_forward(h, embed_->value, b.ids, false);
    // gemma: hidden * normalizer, the normalizer a tensor in the checkpoint's dtype (modeling_gemma.py)
    if (config_.embed_scale > 0) be_->scale(h, config_.embed_scale);
    return nullptr;
  }

  void embed_backward(const Tensor& dh, const Batch& b, Activations*) override {
    if (!embed_->trainable) return;
    if (config_.embed_scale > 0) {
      Tensor scaled = be_->empty(dh.shape);
      be_->copy(scaled, dh);
      be_->scale(scaled, config_.embed_scale);
      be_->embedding_backward(embed_->grad, scaled, b.ids);
    } else {
      be_->embedding_backward(embed_->grad, dh, b.ids);
    }
  }

  // MLP: out[T,H] from n[T,H].
  void mlp_forward(const DecoderLayer& L, Tensor& out, const Tensor& n, const Batch& b, MlpActs& a, bool keep) {
    Backend& be = *be_;
    const int64_t T = b.tokens, I = config_.intermediate;
    a.gate = be.empty({T, I});
    a.act = be.empty({T, I});
    if (!config_.gated_mlp) {
      L.fc1->forward(be, a.gate, n, b, keep ? &a.lgate : nullptr);
      be.activation_forward(a.act, a.gate, config_.act);
      L.fc2->forward(be, out, a.act, b, keep ? &a.ldown : nullptr);
      return;
    }
    a.up = be.empty({T, I});
    if (L.gate_up) {  // phi3: [gate | up] (modeling_phi3.py: gate, up_states = up_states.chunk(2, dim=-1))
      a.gate_up = be.empty({T, 2 * I});
      L.gate_up->forward(be, a.gate_up, n, b, keep ? &a.lgate_up : nullptr);
      be.copy_columns(a.gate, 0, a.gate_up, 0, I);
      be.copy_columns(a.up, 0, a.gate_up, I, I);
    } else {
      L.gate->forward(be, a.gate, n, b, keep ? &a.lgate : nullptr);
      L.up->forward(be, a.up, n, b, keep ? &a.lup : nullptr);
    }
    be.gated_forward(a.act, a.gate, a.up, config_.act);
    L.down->forward(be, out, a.act, b, keep ? &a.ldown : nullptr);
  }

  // dn[T,H] (= or += when accumulate) from dout[T,H].
  void mlp_backward(const DecoderLayer& L, Tensor& dn, bool accumulate, const Tensor& dout, const Tensor& n,
                    const Batch& b, const MlpActs& a) {
    Backend& be = *be_;
    const int64_t T = b.tokens, I = config_.intermediate;
    Tensor dact = be.empty({T, I});
    if (!config_.gated_mlp) {
      L.fc2->backward(be, &dact, false, dout, a.act, b, a.ldown);
      Tensor df = be.empty({T, I});
      be.activation_backward(df, dact, a.gate, config_.act);
      L.fc1->backward(be, &dn, accumulate, df, n, b, a.lgate);
      return;
    }
    L.down->backward(be, &dact, false, dout, a.act, b, a.ldown);
    Tensor dgate = be.empty({T, I}), dup = be.empty({T, I});
    be.gated_backward(dgate, dup, dact, a.gate, a.up, config_.act);
    dact = Tensor();
    if (L.gate_up) {
      Tensor dgu = be.empty({T, 2 * I});
      be.copy_columns(dgu, 0, dgate, 0, I);
      be.copy_columns(dgu, I, dup, 0, I);
      L.gate_up->backward(be, &dn, accumulate, dgu, n, b, a.lgate_up);
    } else {
      L.gate->backward(be, &dn, accumulate, dgate, n, b, a.lgate);
      L.up->backward(be, &dn, true, dup, n, b, a.lup);
    }
  }

  // Attention: o[T,H] from n1[T,H].
  void attn_forward(const DecoderLayer& L, Tensor& o, const Tensor& n1, const Batch& b, DecoderLayerActs& a,
                    bool keep) {
    Backend& be = *be_;
    const ModelConfig& c = config_;
    const int64_t T = b.tokens, D = c.head_dim, q = c.heads * D, kv = c.kv_heads * D;
    Tensor qp = be.empty({T, q}), kp = be.empty({T, kv});
    a.v = be.empty({T, kv});
    if (L.qkv) {
      a.qkv = be.empty({T, q + 2 * kv});
      L.qkv->forward(be, a.qkv, n1, b, keep ? &a.lqkv : nullptr);
      be.copy_columns(qp, 0, a.qkv, 0, q);
      be.copy_columns(kp, 0, a.qkv, q, kv);
      be.copy_columns(a.v, 0, a.qkv, q + kv, kv);
    } else {
      L.q->forward(be, qp, n1, b, keep ? &a.lq : nullptr);
      L.k->forward(be, kp, n1, b, keep ? &a.lk : nullptr);
      L.v->forward(be, a.v, n1, b, keep ? &a.lv : nullptr);
    }
    if (L.q_norm) {  // qwen3: normalise each head, then RoPE (modeling_qwen3.py)
      a.q_pre = qp;
      a.k_pre = kp;
      a.q = be.empty({T, q});
      a.k = be.empty({T, kv});
      head_norm_forward(a.q, a.sq, qp, L.q_norm, c.heads);
      head_norm_forward(a.k, a.sk, kp, L.k_norm, c.kv_heads);
    } else {
      a.q = qp;
      a.k = kp;
    }
    Tensor q3 = a.q.view({T, c.heads, D}), k3 = a.k.view({T, c.kv_heads, D}), v3 = a.v.view({T, c.kv_heads, D});
    be.rope_forward(q3, inv_freq_, b.cu_seqlens);
    be.rope_forward(k3, inv_freq_, b.cu_seqlens);
    a.attn = be.empty({T, q});
    a.lse = be.empty({T, c.heads}, stat_dtype());
    Tensor attn3 = a.attn.view({T, c.heads, D});
    be.attention_forward(attn3, a.lse, q3, k3, v3, b.cu_seqlens, true, attn_scale(), L.mods);
    L.o->forward(be, o, a.attn, b, keep ? &a.lo : nullptr);
  }

  // dn1[T,H] (= or += when accumulate) from do[T,H].
  void attn_backward(const DecoderLayer& L, Tensor& dn1, bool accumulate, const Tensor& dO, const Tensor& n1,
                     const Batch& b, const DecoderLayerActs& a) {
    Backend& be = *be_;
    const ModelConfig& c = config_;
    const int64_t T = b.tokens, D = c.head_dim, q = c.heads * D, kv = c.kv_heads * D;
    Tensor dattn = be.empty({T, q});
    L.o->backward(be, &dattn, false, dO, a.attn, b, a.lo);
    Tensor dq = be.empty({T, q}), dk = be.empty({T, kv}), dv = be.empty({T, kv});
    Tensor dq3 = dq.view({T, c.heads, D}), dk3 = dk.view({T, c.kv_heads, D}), dv3 = dv.view({T, c.kv_heads, D});
    be.attention_backward(dq3, dk3, dv3, dattn.view({T, c.heads, D}), a.q.view({T, c.heads, D}),
                          a.k.view({T, c.kv_heads, D}), a.v.view({T, c.kv_heads, D}), a.attn.view({T, c.heads, D}),
                          a.lse, b.cu_seqlens, true, attn_scale(), L.mods);
    dattn = Tensor();
    be.rope_backward(dq3, inv_freq_, b.cu_seqlens);
    be.rope_backward(dk3, inv_freq_, b.cu_seqlens);
    if (L.q_norm) {
      Tensor dqp = be.empty({T, q}), dkp = be.empty({T, kv});
      head_norm_backward(dqp, dq, a.q_pre, L.q_norm, a.sq, c.heads);
      head_norm_backward(dkp, dk, a.k_pre, L.k_norm, a.sk, c.kv_heads);
      dq = dqp;
      dk = dkp;
    }
    if (L.qkv) {
      Tensor dqkv = be.empty({T, q + 2 * kv});
      be.copy_columns(dqkv, 0, dq, 0, q);
      be.copy_columns(dqkv, q, dk, 0, kv);
      be.copy_columns(dqkv, q + kv, dv, 0, kv);
      L.qkv->backward(be, &dn1, accumulate, dqkv, n1, b, a.lqkv);
    } else {
      L.q->backward(be, &dn1, accumulate, dq, n1, b, a.lq);
      L.k->backward(be, &dn1, true, dk, n1, b, a.lk);
      L.v->backward(be, &dn1, true, dv, n1, b, a.lv);
    }
  }

  std::unique_ptr<Activations> layer_forward(int i, Tensor& out, const Tensor& x, const Batch& b,
                                             bool keep) override {
    const DecoderLayer& L = layers_[size_t(i)];
    const int64_t T = b.tokens, H = config_.hidden;
    Backend& be = *be_;
    auto a = std::make_unique<DecoderLayerActs>();
    a->n1 = be.empty({T, H});
    norm_forward(a->n1, a->s1, x, L.input_norm);
    a->o = be.empty({T, H});
    attn_forward(L, a->o, a->n1, b, *a, keep);
    if (config_.parallel_block) {  // phi: out = x + attn(n1) + mlp(n1)
      a->m = be.empty({T, H});
      mlp_forward(L, a->m, a->n1, b, a->mlp, keep);
      be.add(out, x, a->o);
      be.add(out, out, a->m);
      if (!keep) return nullptr;
      return a;
    }
    Tensor o = a->o;
    if (L.post_attn.w) {  // gemma2: the attention output is normalised before the residual
      o = be.empty({T, H});
      norm_forward(o, a->so, a->o, L.post_attn);
    }
    a->h1 = be.empty({T, H});
    be.add(a->h1, x, o);
    a->n2 = be.empty({T, H});
    norm_forward(a->n2, a->s2, a->h1, L.norm2);
    a->m = be.empty({T, H});
    mlp_forward(L, a->m, a->n2, b, a->mlp, keep);
    Tensor m = a->m;
    if (L.post_ff.w) {
      m = be.empty({T, H});
      norm_forward(m, a->sm, a->m, L.post_ff);
    }
    be.add(out, a->h1, m);
    if (!keep) return nullptr;
    return a;
  }

  void layer_backward(int i, Tensor& dx, const Tensor& dout, const Tensor& x, const Batch& b,
                      Activations& acts) override {
    const DecoderLayer& L = layers_[size_t(i)];
    auto& a = static_cast<DecoderLayerActs&>(acts);
    const int64_t T = b.tokens, H = config_.hidden;
    Backend& be = *be_;
    Tensor dn1 = be.empty({T, H});
    if (config_.parallel_block) {
      attn_backward(L, dn1, false, dout, a.n1, b, a);
      mlp_backward(L, dn1, true, dout, a.n1, b, a.mlp);
      norm_backward(dx, dn1, x, L.input_norm, a.s1);
      be.axpy(dx, 1.0, dout);  // residual
      return;
    }
    // out = h1 + post_ff(mlp(norm2(h1)))
    Tensor dm = dout;
    if (L.post_ff.w) {
      dm = be.empty({T, H});
      norm_backward(dm, dout, a.m, L.post_ff, a.sm);
    }
    Tensor dn2 = be.empty({T, H});
    mlp_backward(L, dn2, false, dm, a.n2, b, a.mlp);
    dm = Tensor();
    Tensor dh1 = be.empty({T, H});
    norm_backward(dh1, dn2, a.h1, L.norm2, a.s2);
    be.axpy(dh1, 1.0, dout);  // residual
    // h1 = x + post_attn(attn(input_norm(x)))
    Tensor dO = dh1;
    if (L.post_attn.w) {
      dO = be.empty({T, H});
      norm_backward(dO, dh1, a.o, L.post_attn, a.so);
    }
    attn_backward(L, dn1, false, dO, a.n1, b, a);
    norm_backward(dx, dn1, x, L.input_norm, a.s1);
    be.axpy(dx, 1.0, dh1);  // residual
  }

  std::unique_ptr<Activations> head_forward(Tensor& out, const Tensor& x, bool keep) override {
    auto a = std::make_unique<FinalNormActs>();
    norm_forward(out, a->s, x, final_norm_);
    if (!keep) return nullptr;
    return a;
  }

  void head_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activations* acts) override {
    norm_backward(dx, dout, x, final_norm_, static_cast<FinalNormActs*>(acts)->s);
  }

  // The causal-LM head: lm_head (+ bias for phi), or the embeddings when tied.
  LmHead lm_head() override {
    if (config_.tie_word_embeddings) return {&embed_->value, nullptr, config_.final_softcap};
    if (!lm_head_weight_)
      throw Error("scoreTokens: the LM head is not loaded (loadLmHead with lm_head.weight first)");
    return {&lm_head_weight_->value, lm_head_bias_ ? &lm_head_bias_->value : nullptr, config_.final_softcap};
  }

 private:
  std::vector<double> inv_freq_;
  Param* embed_ = nullptr;
  Norm final_norm_;
  std::vector<DecoderLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_decoder(const ModelConfig& config, Backend* backend) {
  return std::make_unique<DecoderModel>(config, backend);
}

}  // namespace lmdr
