// BERT encoder graph: word + position + token_type(0) embeddings -> LayerNorm, then post-LN
// blocks of bidirectional attention -> residual -> LayerNorm, GELU(erf) MLP -> residual ->
// LayerNorm. The pooler is not used (CLS pooling reads the last hidden state).
#include <cmath>

#include "core/model.h"

namespace lmdr {

namespace {

struct BertLayer {
  Linear *query, *key, *value, *attn_out;
  Param *attn_norm_w, *attn_norm_b;
  Linear *intermediate, *output;
  Param *out_norm_w, *out_norm_b;
};

struct BertEmbedActs : Activations {
  Tensor sum, mean, rstd;  // word + position + type [T,H]; LayerNorm statistics [T]
};

struct BertLayerActs : Activations {
  Tensor q, k, v, attn, lse;  // [T,H] x4 (heads * head_dim = H), [T,heads]
  Tensor s1, h1, mean1, rstd1;  // x + attn_out, its LayerNorm, statistics
  Tensor inter, act;            // [T,I]: intermediate.dense out, gelu(inter)
  Tensor s2, mean2, rstd2;      // h1 + output.dense out, statistics of the output LayerNorm
  LinearActs lq, lk, lv, lo, linter, lout;
};

class BertModel : public Model {
 public:
  BertModel(const ModelConfig& c, Backend* be) : Model(c, be) {
    const int64_t H = c.hidden, A = c.heads * c.head_dim, I = c.intermediate;
    word_ = add_param("embeddings.word_embeddings.weight", {c.vocab, H});
    position_ = add_param("embeddings.position_embeddings.weight", {c.max_positions, H});
    token_type_ = add_param("embeddings.token_type_embeddings.weight", {c.type_vocab, H});
    embed_norm_w_ = add_param("embeddings.LayerNorm.weight", {H});
    embed_norm_b_ = add_param("embeddings.LayerNorm.bias", {H});
    for (int64_t i = 0; i < c.layers; i++) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      BertLayer L;
      L.query = add_linear(p + "attention.self.query", H, A, true);
      L.key = add_linear(p + "attention.self.key", H, A, true);
      L.value = add_linear(p + "attention.self.value", H, A, true);
      L.attn_out = add_linear(p + "attention.output.dense", A, H, true);
      L.attn_norm_w = add_param(p + "attention.output.LayerNorm.weight", {H});
      L.attn_norm_b = add_param(p + "attention.output.LayerNorm.bias", {H});
      L.intermediate = add_linear(p + "intermediate.dense", H, I, true);
      L.output = add_linear(p + "output.dense", I, H, true);
      L.out_norm_w = add_param(p + "output.LayerNorm.weight", {H});
      L.out_norm_b = add_param(p + "output.LayerNorm.bias", {H});
      layers_.push_back(L);
    }
  }

 protected:
  DType stat_dtype() const { return be_->act_dtype() == DType::F64 ? DType::F64 : DType::F32; }
  double scale() const { return 1.0 / std::sqrt(double(config_.head_dim)); }

  void check_batch(const Batch& b) const override {
    for (int64_t s = 0; s < b.seqs; s++) {
      const int64_t len = b.cu_seqlens[s + 1] - b.cu_seqlens[s];
      if (len > config_.max_positions)
        throw Error("sequence " + std::to_string(s) + " has " + std::to_string(len) + " tokens; this BERT model has " +
                    std::to_string(config_.max_positions) + " positions (max_position_embeddings)");
    }
  }

  void norm_forward(Tensor& out, Tensor& mean, Tensor& rstd, const Tensor& x, const Param& w, const Param& bias) {
    mean = be_->empty({x.dim(0)}, stat_dtype());
    rstd = be_->empty({x.dim(0)}, stat_dtype());
    be_->layernorm_forward(out, mean, rstd, x, w.value, bias.value, config_.norm_eps);
  }

  void norm_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Param& w, Param& bias, const Tensor& mean,
                     const Tensor& rstd) {
    const bool train = w.trainable;  // weight and bias train together (full mode)
    be_->layernorm_backward(dx, train ? &w.grad : nullptr, train ? &bias.grad : nullptr, dout, x, w.value, mean, rstd);
  }

  std::unique_ptr<Activations> embed_forward(Tensor& h, const Batch& b, bool keep) override {
    auto a = std::make_unique<BertEmbedActs>();
    a->sum = be_->empty({b.tokens, config_.hidden});
    be_->embedding_forward(a->sum, word_->value, b.ids, false);
    be_->embedding_forward(a->sum, position_->value, b.positions, true);
    be_->embedding_forward(a->sum, token_type_->value, std::vector<int32_t>(size_t(b.tokens), 0), true);
    norm_forward(h, a->mean, a->rstd, a->sum, *embed_norm_w_, *embed_norm_b_);
    if (!keep) return nullptr;
    return a;
  }

  void embed_backward(const Tensor& dh, const Batch& b, Activations* acts) override {
    auto& a = *static_cast<BertEmbedActs*>(acts);
    Tensor dsum = be_->empty({b.tokens, config_.hidden});
    norm_backward(dsum, dh, a.sum, *embed_norm_w_, *embed_norm_b_, a.mean, a.rstd);
    const std::vector<int32_t> types(size_t(b.tokens), 0);
    for (auto [table, ids] : {std::pair<Param*, const std::vector<int32_t>*>{word_, &b.ids}, {position_, &b.positions},
                              {token_type_, &types}}) {
      if (table->trainable) be_->embedding_backward(table->grad, dsum, *ids);
    }
  }

  std::unique_ptr<Activations> layer_forward(int i, Tensor& out, const Tensor& x, const Batch& b,
                                             bool keep) override {
    const BertLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, A = c.heads * D, I = c.intermediate;
    Backend& be = *be_;
    auto a = std::make_unique<BertLayerActs>();
    a->q = be.empty({T, A});
    a->k = be.empty({T, A});
    a->v = be.empty({T, A});
    L.query->forward(be, a->q, x, b, keep ? &a->lq : nullptr);
    L.key->forward(be, a->k, x, b, keep ? &a->lk : nullptr);
    L.value->forward(be, a->v, x, b, keep ? &a->lv : nullptr);
    a->attn = be.empty({T, A});
    a->lse = be.empty({T, c.heads}, stat_dtype());
    Tensor attn3 = a->attn.view({T, c.heads, D});
    be.attention_forward(attn3, a->lse, a->q.view({T, c.heads, D}), a->k.view({T, c.heads, D}),
                         a->v.view({T, c.heads, D}), b.cu_seqlens, false, scale());
    Tensor o = be.empty({T, H});
    L.attn_out->forward(be, o, a->attn, b, keep ? &a->lo : nullptr);
    a->s1 = be.empty({T, H});
    be.add(a->s1, x, o);
    a->h1 = be.empty({T, H});
    norm_forward(a->h1, a->mean1, a->rstd1, a->s1, *L.attn_norm_w, *L.attn_norm_b);
    a->inter = be.empty({T, I});
    L.intermediate->forward(be, a->inter, a->h1, b, keep ? &a->linter : nullptr);
    a->act = be.empty({T, I});
    be.gelu_forward(a->act, a->inter);
    Tensor d = be.empty({T, H});
    L.output->forward(be, d, a->act, b, keep ? &a->lout : nullptr);
    a->s2 = be.empty({T, H});
    be.add(a->s2, a->h1, d);
    norm_forward(out, a->mean2, a->rstd2, a->s2, *L.out_norm_w, *L.out_norm_b);
    if (!keep) return nullptr;
    return a;
  }

  void layer_backward(int i, Tensor& dx, const Tensor& dout, const Tensor& x, const Batch& b,
                      Activations& acts) override {
    const BertLayer& L = layers_[size_t(i)];
    const ModelConfig& c = config_;
    auto& a = static_cast<BertLayerActs&>(acts);
    const int64_t T = b.tokens, H = c.hidden, D = c.head_dim, A = c.heads * D, I = c.intermediate;
    Backend& be = *be_;
    // out = LN2(h1 + output(gelu(intermediate(h1))))
    Tensor ds2 = be.empty({T, H});
    norm_backward(ds2, dout, a.s2, *L.out_norm_w, *L.out_norm_b, a.mean2, a.rstd2);
    Tensor dact = be.empty({T, I});
    L.output->backward(be, &dact, false, ds2, a.act, b, a.lout);
    Tensor dinter = be.empty({T, I});
    be.gelu_backward(dinter, dact, a.inter);
    dact = Tensor();
    Tensor dh1 = be.empty({T, H});
    L.intermediate->backward(be, &dh1, false, dinter, a.h1, b, a.linter);
    be.axpy(dh1, 1.0, ds2);  // residual
    // h1 = LN1(x + attn_out(attention(query(x), key(x), value(x))))
    Tensor ds1 = be.empty({T, H});
    norm_backward(ds1, dh1, a.s1, *L.attn_norm_w, *L.attn_norm_b, a.mean1, a.rstd1);
    Tensor dattn = be.empty({T, A});
    L.attn_out->backward(be, &dattn, false, ds1, a.attn, b, a.lo);
    Tensor dq = be.empty({T, A}), dk = be.empty({T, A}), dv = be.empty({T, A});
    Tensor dq3 = dq.view({T, c.heads, D}), dk3 = dk.view({T, c.heads, D}), dv3 = dv.view({T, c.heads, D});
    be.attention_backward(dq3, dk3, dv3, dattn.view({T, c.heads, D}), a.q.view({T, c.heads, D}),
                          a.k.view({T, c.heads, D}), a.v.view({T, c.heads, D}), a.attn.view({T, c.heads, D}), a.lse,
                          b.cu_seqlens, false, scale());
    L.query->backward(be, &dx, false, dq, x, b, a.lq);
    L.key->backward(be, &dx, true, dk, x, b, a.lk);
    L.value->backward(be, &dx, true, dv, x, b, a.lv);
    be.axpy(dx, 1.0, ds1);  // residual
  }

  std::unique_ptr<Activations> head_forward(Tensor& out, const Tensor& x, bool) override {
    out = x;  // post-LN: the last block's output is the final hidden state
    return nullptr;
  }

  void head_backward(Tensor& dx, const Tensor& dout, const Tensor&, Activations*) override { dx = dout; }

 private:
  Param *word_, *position_, *token_type_, *embed_norm_w_, *embed_norm_b_;
  std::vector<BertLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_bert(const ModelConfig& config, Backend* backend) {
  return std::make_unique<BertModel>(config, backend);
}

}  // namespace lmdr
