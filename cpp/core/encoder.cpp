// The encoder graph (BERT, T5), reading the description in ModelConfig:
//   post-norm (BERT): h1 = norm_a(x + o(attn(x))), out = norm_b(h1 + ffn(h1)); word + position
//     + token_type(0) embeddings -> LayerNorm; biases everywhere; no final norm (the pooler is
//     not used: CLS pooling reads the last hidden state).
//   pre-norm (T5): s1 = x + o(attn(norm_a(x))), out = s1 + ffn(norm_b(s1)); word embeddings
//     only (shared.weight); a final norm (final_layer_norm). T5's norm is RMSNorm without mean
//     or bias (T5LayerNorm), its attention has no 1/sqrt(d) scaling and adds a relative position
//     bias, its feed-forward is act(wi) -> wo or act(wi_0) * wi_1 -> wo.
// T5's relative position bias follows Hugging Face transformers' modeling_t5.py (T5Attention.
// _relative_position_bucket and compute_bias; T5Stack hands layer 0's position_bias to every
// later layer): relative_position = key position - query position; bidirectional, half the
// buckets for keys after the query; within each half, distances below max_exact = buckets/4
// have a bucket each, larger ones share log-spaced buckets up to max_distance. The bias table
// relative_attention_bias [buckets, heads] exists in layer 0 only; each layer gathers it into
// a [2 * span - 1, heads] bias by relative position (the attention op adds it to the scores),
// and its gradient, summed over all layers, scatters back by bucket.
#include <algorithm>
#include <cmath>

#include "core/model.h"

namespace lmdr {

namespace {

struct Norm {
  Param *w = nullptr, *b = nullptr;  // b: LayerNorm only
};

struct NormStats {
  Tensor mean, rstd;  // mean: LayerNorm only
};

struct EncoderLayer {
  Linear *q, *k, *v, *o;
  Norm norm_a, norm_b;  // post-norm: after attention / after the FFN; pre-norm: before them
  Linear *up, *gate, *down;  // gate: the gated form (T5 wi_0; up is wi_1), else null
};

struct EmbedActs : Activations {
  Tensor sum;  // BERT: word + position + type [T,H] before the embedding LayerNorm
  NormStats st;
};

struct LayerActs : Activations {
  Tensor n1;                 // pre-norm: norm_a(x), the attention input
  NormStats st1;
  Tensor q, k, v, attn, lse;  // [T,A] x4 (A = heads * head_dim), [T,heads]
  Tensor rel;                // T5: the relative position bias [2 * span - 1, heads]
  Tensor s1, h1;             // x + o(attn); the FFN input (norm of s1)
  NormStats st2;
  Tensor gate, inter, act;   // [T,I]: gate (gated), up projection, act(up) or act(gate) * up
  Tensor s2;                 // post-norm: h1 + ffn(h1)
  NormStats st3;
  LinearActs lq, lk, lv, lo, lgate, lup, ldown;
};

struct HeadActs : Activations {
  NormStats st;
};

// T5Attention._relative_position_bucket (bidirectional) for relative = key - query, in float32
// like the PyTorch original (the float result is truncated, so the rounding must match).
int32_t t5_bucket(int64_t relative, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2, max_exact = half / 2;
  const int32_t base = relative > 0 ? int32_t(half) : 0;
  const int64_t n = relative < 0 ? -relative : relative;
  if (n < max_exact) return base + int32_t(n);
  const float large = std::log(float(n) / float(max_exact)) / float(std::log(double(max_distance) / double(max_exact))) *
                      float(half - max_exact);
  return base + int32_t(std::min<int64_t>(max_exact + int64_t(large), half - 1));
}

class EncoderModel : public Model {
 public:
  EncoderModel(const ModelConfig& c, Backend* be) : Model(c, be) {
    const int64_t H = c.hidden, A = c.heads * c.head_dim, I = c.intermediate;
    const bool t5 = c.arch == ModelConfig::Arch::T5;
    auto norm = [&](const std::string& name) {
      Norm n;
      n.w = add_param(name + ".weight", {H});
      if (c.norm == ModelConfig::Norm::Layer) n.b = add_param(name + ".bias", {H});
      return n;
    };
    if (t5) {
      word_ = add_param("shared.weight", {c.vocab, H});
    } else {
      word_ = add_param("embeddings.word_embeddings.weight", {c.vocab, H});
      position_ = add_param("embeddings.position_embeddings.weight", {c.max_positions, H});
      token_type_ = add_param("embeddings.token_type_embeddings.weight", {c.type_vocab, H});
      embed_norm_ = norm("embeddings.LayerNorm");
    }
    for (int64_t i = 0; i < c.layers; i++) {
      EncoderLayer L;
      if (t5) {
        const std::string p = "encoder.block." + std::to_string(i) + ".layer.";
        L.norm_a = norm(p + "0.layer_norm");
        L.q = add_linear(p + "0.SelfAttention.q", H, A, c.qkv_bias);
        L.k = add_linear(p + "0.SelfAttention.k", H, A, c.qkv_bias);
        L.v = add_linear(p + "0.SelfAttention.v", H, A, c.qkv_bias);
        L.o = add_linear(p + "0.SelfAttention.o", A, H, c.o_bias);
        if (i == 0 && c.rel_buckets > 0)
          rel_table_ = add_param(p + "0.SelfAttention.relative_attention_bias.weight", {c.rel_buckets, c.heads});
        L.norm_b = norm(p + "1.layer_norm");
        const std::string f = p + "1.DenseReluDense.";
        L.gate = c.gated_mlp ? add_linear(f + "wi_0", H, I, c.mlp_bias) : nullptr;
        L.up = add_linear(f + (c.gated_mlp ? "wi_1" : "wi"), H, I, c.mlp_bias);
        L.down = add_linear(f + "wo", I, H, c.mlp_bias);
      } else {
        const std::string p = "encoder.layer." + std::to_string(i) + ".";
        L.q = add_linear(p + "attention.self.query", H, A, c.qkv_bias);
        L.k = add_linear(p + "attention.self.key", H, A, c.qkv_bias);
        L.v = add_linear(p + "attention.self.value", H, A, c.qkv_bias);
        L.o = add_linear(p + "attention.output.dense", A, H, c.o_bias);
        L.norm_a = norm(p + "attention.output.LayerNorm");
        L.gate = nullptr;
        L.up = add_linear(p + "intermediate.dense", H, I, c.mlp_bias);
        L.down = add_linear(p + "output.dense", I, H, c.mlp_bias);
        L.norm_b = norm(p + "output.LayerNorm");
      }
      layers_.push_back(L);
    }
    if (c.pre_norm) final_norm_ = norm(t5 ? "encoder.final_layer_norm" : "final_layernorm");
  }

 protected:
  DType stat_dtype() const { return be_->act_dtype() == DType::F64 ? DType::F64 : DType::F32; }
  double scale() const { return config_.attn_scale > 0 ? config_.attn_scale : 1.0 / std::sqrt(double(config_.head_dim)); }

  void check_batch(const Batch& b) const override {
    if (!position_) return;  // relative positions: any length
    for (int64_t s = 0; s < b.seqs; s++) {
      const int64_t len = b.cu_seqlens[s + 1] - b.cu_seqlens[s];
      if (len > config_.max_positions)
        throw Error("sequence " + std::to_string(s) + " has " + std::to_string(len) + " tokens; this BERT model has " +
                    std::to_string(config_.max_positions) + " positions (max_position_embeddings)");
    }
  }

  void norm_forward(Tensor& out, NormStats& st, const Tensor& x, const Norm& n) {
    st.rstd = be_->empty({x.dim(0)}, stat_dtype());
    if (n.b) {
      st.mean = be_->empty({x.dim(0)}, stat_dtype());
      be_->layernorm_forward(out, st.mean, st.rstd, x, n.w->value, n.b->value, config_.norm_eps);
    } else {
      be_->rmsnorm_forward(out, st.rstd, x, n.w->value, config_.norm_eps);
    }
  }

  void norm_backward(Tensor& dx, const Tensor& dout, const Tensor& x, const Norm& n, const NormStats& st) {
    const bool train = n.w->trainable;  // weight and bias train together (full mode)
    if (n.b)
      be_->layernorm_backward(dx, train ? &n.w->grad : nullptr, train ? &n.b->grad : nullptr, dout, x, n.w->value,
                              st.mean, st.rstd);
    else
      be_->rmsnorm_backward(dx, train ? &n.w->grad : nullptr, dout, x, n.w->value, st.rstd);
  }

  // T5: the bucket of every relative position -(span-1) .. span-1, span = the longest sequence
  std::vector<int32_t> rel_buckets(const Batch& b) const {
    int64_t span = 0;
    for (int64_t s = 0; s < b.seqs; s++) span = std::max<int64_t>(span, b.cu_seqlens[s + 1] - b.cu_seqlens[s]);
    std::vector<int32_t> ids(size_t(2 * span - 1));
    for (int64_t r = 0; r < 2 * span - 1; r++) ids[size_t(r)] = t5_bucket(r - (span - 1), config_.rel_buckets, config_.rel_max_distance);
    return ids;
  }

  std::unique_ptr<Activations> embed_forward(Tensor& h, const Batch& b, bool keep) override {
    if (!position_) {
      be_->embedding_forward(h, word_->value, b.ids, false);
      return nullptr;
    }
    auto a = std::make_unique<EmbedActs>();
    a->sum = be_->empty({b.tokens, config_.hidden});
    be_->embedding_forward(a->sum, word_->value, b.ids, false);
    be_->embedding_forward(a->sum, position_->value, b.positions, true);
    be_->embedding_forward(a->sum, token_type_->value, std::vector<int32_t>(size_t(b.tokens), 0), true);
    norm_forward(h, a->st, a->sum, embed_norm_);
    if (!keep) return nullptr;
    return a;
  }

  void embed_backward(const Tensor& dh, const Batch& b, Activations* acts) override {
    if (!position_) {
      if (word_->trainable) be_->embedding_backward(word_->grad, dh, b.ids);
      return;
    }
    auto& a = *static_cast<EmbedActs*>(acts);
    Tensor dsum = be_->empty({b.tokens, config_.hidden});
    norm_backward(dsum, dh, a.sum, embed_norm_, a.st);
    const std::vector<int32_t> types(size_t(b.tokens), 0);
    for (auto [table, ids] : {std::pair<Param*, const std::vector<int32_t>*>{word_, &b.ids}, {position_, &b.positions},
                              {token_type_, &types}}) {
      if (table->trainable) be_->embedding_backward(table->grad, dsum, *ids);
    }
  }

  std::unique_ptr<Activations> layer_forward(int i, Tensor& out, const Tensor& x, const Batch& b,
                                             bool keep) override {
    const EncoderLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, A = c.heads * D, I = c.intermediate;
    const bool pre = c.pre_norm;
    Backend& be = *be_;
    auto a = std::make_unique<LayerActs>();
    // attention
    if (pre) {
      a->n1 = be.empty({T, H});
      norm_forward(a->n1, a->st1, x, L.norm_a);
    }
    const Tensor& ain = pre ? a->n1 : x;
    a->q = be.empty({T, A});
    a->k = be.empty({T, A});
    a->v = be.empty({T, A});
    L.q->forward(be, a->q, ain, b, keep ? &a->lq : nullptr);
    L.k->forward(be, a->k, ain, b, keep ? &a->lk : nullptr);
    L.v->forward(be, a->v, ain, b, keep ? &a->lv : nullptr);
    AttentionMods mods;
    if (rel_table_) {
      const std::vector<int32_t> ids = rel_buckets(b);
      a->rel = be.empty({int64_t(ids.size()), c.heads});
      be.embedding_forward(a->rel, rel_table_->value, ids, false);
      mods.rel_bias = &a->rel;
    }
    a->attn = be.empty({T, A});
    a->lse = be.empty({T, c.heads}, stat_dtype());
    Tensor attn3 = a->attn.view({T, c.heads, D});
    be.attention_forward(attn3, a->lse, a->q.view({T, c.heads, D}), a->k.view({T, c.heads, D}),
                         a->v.view({T, c.heads, D}), b.cu_seqlens, false, scale(), mods);
    Tensor o = be.empty({T, H});
    L.o->forward(be, o, a->attn, b, keep ? &a->lo : nullptr);
    a->s1 = be.empty({T, H});
    be.add(a->s1, x, o);
    o = Tensor();
    // feed-forward on h1 = norm(s1)
    a->h1 = be.empty({T, H});
    norm_forward(a->h1, a->st2, a->s1, pre ? L.norm_b : L.norm_a);
    a->inter = be.empty({T, I});
    L.up->forward(be, a->inter, a->h1, b, keep ? &a->lup : nullptr);
    a->act = be.empty({T, I});
    if (L.gate) {
      a->gate = be.empty({T, I});
      L.gate->forward(be, a->gate, a->h1, b, keep ? &a->lgate : nullptr);
      be.gated_forward(a->act, a->gate, a->inter, c.act);
    } else if (c.act == Activation::Gelu) {
      be.gelu_forward(a->act, a->inter);
    } else {
      be.activation_forward(a->act, a->inter, c.act);
    }
    Tensor d = be.empty({T, H});
    L.down->forward(be, d, a->act, b, keep ? &a->ldown : nullptr);
    if (pre) {
      be.add(out, a->s1, d);
    } else {
      a->s2 = be.empty({T, H});
      be.add(a->s2, a->h1, d);
      norm_forward(out, a->st3, a->s2, L.norm_b);
    }
    if (!keep) return nullptr;
    return a;
  }

  void layer_backward(int i, Tensor& dx, const Tensor& dout, const Tensor& x, const Batch& b,
                      Activations& acts) override {
    const EncoderLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    auto& a = static_cast<LayerActs&>(acts);
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, A = c.heads * D, I = c.intermediate;
    const bool pre = c.pre_norm;
    Backend& be = *be_;
    // the FFN output's gradient dd; post-norm: out = norm_b(s2), s2 = h1 + d
    Tensor ds2;
    if (!pre) {
      ds2 = be.empty({T, H});
      norm_backward(ds2, dout, a.s2, L.norm_b, a.st3);
    }
    const Tensor& dd = pre ? dout : ds2;
    Tensor dact = be.empty({T, I});
    L.down->backward(be, &dact, false, dd, a.act, b, a.ldown);
    Tensor dinter = be.empty({T, I}), dh1 = be.empty({T, H});
    if (L.gate) {
      Tensor dgate = be.empty({T, I});
      be.gated_backward(dgate, dinter, dact, a.gate, a.inter, c.act);
      L.gate->backward(be, &dh1, false, dgate, a.h1, b, a.lgate);
      L.up->backward(be, &dh1, true, dinter, a.h1, b, a.lup);
    } else {
      if (c.act == Activation::Gelu) be.gelu_backward(dinter, dact, a.inter);
      else be.activation_backward(dinter, dact, a.inter, c.act);
      L.up->backward(be, &dh1, false, dinter, a.h1, b, a.lup);
    }
    dact = Tensor();
    dinter = Tensor();
    // ds1: through h1 = norm(s1), plus the residual (pre-norm: out = s1 + d; post: s2 = h1 + d)
    if (!pre) be.axpy(dh1, 1.0, ds2);
    Tensor ds1 = be.empty({T, H});
    norm_backward(ds1, dh1, a.s1, pre ? L.norm_b : L.norm_a, a.st2);
    if (pre) be.axpy(ds1, 1.0, dout);
    dh1 = Tensor();
    // attention: s1 = x + o(attn(q, k, v))
    Tensor dattn = be.empty({T, A});
    L.o->backward(be, &dattn, false, ds1, a.attn, b, a.lo);
    Tensor dq = be.empty({T, A}), dk = be.empty({T, A}), dv = be.empty({T, A});
    Tensor dq3 = dq.view({T, c.heads, D}), dk3 = dk.view({T, c.heads, D}), dv3 = dv.view({T, c.heads, D});
    AttentionMods mods;
    Tensor drel;
    if (rel_table_) {
      mods.rel_bias = &a.rel;
      if (rel_table_->trainable) {
        drel = be.empty(a.rel.shape);
        mods.d_rel_bias = &drel;
      }
    }
    be.attention_backward(dq3, dk3, dv3, dattn.view({T, c.heads, D}), a.q.view({T, c.heads, D}),
                          a.k.view({T, c.heads, D}), a.v.view({T, c.heads, D}), a.attn.view({T, c.heads, D}), a.lse,
                          b.cu_seqlens, false, scale(), mods);
    if (drel.defined()) be.embedding_backward(rel_table_->grad, drel, rel_buckets(b));  // every layer's share
    const Tensor& ain = pre ? a.n1 : x;
    Tensor dain = pre ? be.empty({T, H}) : dx;
    L.q->backward(be, &dain, false, dq, ain, b, a.lq);
    L.k->backward(be, &dain, true, dk, ain, b, a.lk);
    L.v->backward(be, &dain, true, dv, ain, b, a.lv);
    if (pre) norm_backward(dx, dain, x, L.norm_a, a.st1);
    be.axpy(dx, 1.0, ds1);  // residual
  }

  std::unique_ptr<Activations> head_forward(Tensor& out, const Tensor& x, bool keep) override {
    if (!final_norm_.w) {
      out = x;  // post-norm: the last block's output is the final hidden state
      return nullptr;
    }
    auto a = std::make_unique<HeadActs>();
    norm_forward(out, a->st, x, final_norm_);
    if (!keep) return nullptr;
    return a;
  }

  void head_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activations* acts) override {
    if (!final_norm_.w) {
      dx = dout;
      return;
    }
    norm_backward(dx, dout, x, final_norm_, static_cast<HeadActs*>(acts)->st);
  }

 private:
  Param *word_ = nullptr, *position_ = nullptr, *token_type_ = nullptr;
  Norm embed_norm_, final_norm_;
  Param* rel_table_ = nullptr;  // T5: layer 0's relative_attention_bias [buckets, heads]
  std::vector<EncoderLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_encoder(const ModelConfig& config, Backend* backend) {
  return std::make_unique<EncoderModel>(config, backend);
}

}  // namespace lmdr
