// The architecture-independent driver: building and loading, batch validation, the layer loop
// with per-layer recompute, pooling and L2 normalisation and their backward.
#include "core/model.h"

#include <cmath>

#include "core/weights.h"

namespace lmdr {

std::unique_ptr<Model> make_decoder(const ModelConfig& config, Backend* backend);  // decoder.cpp
std::unique_ptr<Model> make_encoder(const ModelConfig& config, Backend* backend);  // encoder.cpp

static void check_config(const ModelConfig& c) {
  auto positive = [](int64_t v, const char* what) {
    if (v <= 0) throw Error(std::string("model config: ") + what + " must be positive, got " + std::to_string(v));
  };
  positive(c.hidden, "hidden");
  positive(c.layers, "layers");
  positive(c.heads, "heads");
  positive(c.kv_heads, "kvHeads");
  positive(c.head_dim, "headDim");
  positive(c.intermediate, "intermediate");
  positive(c.vocab, "vocab");
  if (c.heads % c.kv_heads != 0)
    throw Error("model config: heads " + std::to_string(c.heads) + " is not a multiple of kvHeads " +
                std::to_string(c.kv_heads));
  if (!(c.norm_eps > 0)) throw Error("model config: normEps must be positive");
  if (c.arch == ModelConfig::Arch::Decoder) {
    const int64_t rot = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
    if (rot % 2 != 0 || rot > c.head_dim)
      throw Error("model config: rotary dims " + std::to_string(rot) + " must be even and at most headDim " +
                  std::to_string(c.head_dim));
    if (!c.sliding_layers.empty() && int64_t(c.sliding_layers.size()) != c.layers)
      throw Error("model config: slidingLayers has " + std::to_string(c.sliding_layers.size()) + " entries for " +
                  std::to_string(c.layers) + " layers");
    if (!c.sliding_layers.empty() && c.sliding_window <= 0)
      throw Error("model config: slidingLayers needs a positive slidingWindow");
    if (c.parallel_block && c.sandwich_norms) throw Error("model config: parallelBlock and sandwichNorms exclude each other");
    if (!(c.rope_theta > 0)) throw Error("model config: ropeTheta must be positive");
  } else if (c.arch == ModelConfig::Arch::Bert) {
    positive(c.max_positions, "maxPositions");
    positive(c.type_vocab, "typeVocab");
    if (c.kv_heads != c.heads) throw Error("model config: bert needs kvHeads == heads");
  } else {
    if (c.kv_heads != c.heads) throw Error("model config: t5 needs kvHeads == heads");
    positive(c.rel_buckets, "relBuckets");
    positive(c.rel_max_distance, "relMaxDistance");
    if (c.rel_buckets < 4) throw Error("model config: t5 relBuckets must be at least 4 (two halves with exact and log buckets)");
    if (c.rel_max_distance <= c.rel_buckets / 4)
      throw Error("model config: t5 relMaxDistance must exceed relBuckets / 4 (the exact range)");
  }
}

std::unique_ptr<Model> Model::load(const ModelConfig& config, const std::vector<TensorSource>& sources,
                                   Backend* backend) {
  check_config(config);
  std::unique_ptr<Model> m = config.arch == ModelConfig::Arch::Decoder ? make_decoder(config, backend)
                                                                       : make_encoder(config, backend);
  m->load_weights(sources);
  return m;
}

Param* Model::add_param(const std::string& name, std::vector<int64_t> shape) {
  auto p = std::make_unique<Param>();
  p->name = name;
  p->value = be_->empty(std::move(shape));
  Param* raw = p.get();
  by_name_[name] = raw;
  params_.push_back(std::move(p));
  return raw;
}

Linear* Model::add_linear(const std::string& module, int64_t in, int64_t out, bool bias) {
  auto l = std::make_unique<Linear>();
  l->module = module;
  l->in = in;
  l->out = out;
  l->weight = add_param(module + ".weight", {out, in});
  if (bias) l->bias = add_param(module + ".bias", {out});
  linears_.push_back(std::move(l));
  return linears_.back().get();
}

void Model::load_weights(const std::vector<TensorSource>& sources) {
  std::vector<WeightTarget> targets;
  for (auto& p : params_) targets.push_back({p->name, &p->value});
  upload_weights(*be_, sources, targets);
}

Batch Model::make_batch(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu,
                        const ForwardOptions& opts) const {
  if (cu.size() < 2) throw Error("cuSeqlens must hold at least 2 offsets (one sequence), got " + std::to_string(cu.size()));
  if (cu[0] != 0) throw Error("cuSeqlens[0] must be 0, got " + std::to_string(cu[0]));
  if (size_t(cu.back()) != ids.size())
    throw Error("cuSeqlens ends at " + std::to_string(cu.back()) + " but ids holds " + std::to_string(ids.size()) +
                " tokens");
  Batch b;
  b.seqs = int64_t(cu.size()) - 1;
  b.tokens = int64_t(ids.size());
  if (!opts.seq_keys.empty() && int64_t(opts.seq_keys.size()) != b.seqs)
    throw Error("seqKeys holds " + std::to_string(opts.seq_keys.size()) + " keys for " + std::to_string(b.seqs) +
                " sequences");
  b.ids = ids;
  b.cu_seqlens = cu;
  b.positions.resize(ids.size());
  b.row_keys.resize(ids.size());
  for (int64_t s = 0; s < b.seqs; s++) {
    if (cu[s + 1] <= cu[s])
      throw Error("sequence " + std::to_string(s) + " is empty or cuSeqlens decreases (cuSeqlens[" + std::to_string(s) +
                  "] = " + std::to_string(cu[s]) + ", cuSeqlens[" + std::to_string(s + 1) + "] = " +
                  std::to_string(cu[s + 1]) + ")");
    uint64_t key = uint32_t(opts.seq_keys.empty() ? int32_t(s) : opts.seq_keys[s]);
    for (int32_t t = cu[s]; t < cu[s + 1]; t++) {
      if (ids[t] < 0 || ids[t] >= config_.vocab)
        throw Error("token id " + std::to_string(ids[t]) + " at position " + std::to_string(t - cu[s]) + " of sequence " +
                    std::to_string(s) + " (ids[" + std::to_string(t) + "]) is outside the vocabulary [0, " +
                    std::to_string(config_.vocab) + ")");
      b.positions[t] = t - cu[s];
      b.row_keys[t] = (key << 32) | uint64_t(uint32_t(t - cu[s]));
    }
  }
  b.train = opts.train;
  b.dropout_seed = opts.dropout_seed;
  check_batch(b);
  return b;
}

Tensor Model::run_layers(const Batch& b, Saved* keep) {
  const int64_t H = config_.hidden;
  Tensor h = be_->empty({b.tokens, H});
  auto embed = embed_forward(h, b, keep != nullptr);
  if (keep) {
    keep->embed = std::move(embed);
    keep->layer_inputs.assign(size_t(config_.layers + 1), Tensor());
    keep->layer_acts.resize(size_t(config_.layers));
  }
  for (int i = 0; i < int(config_.layers); i++) {
    BackendRange range(*be_, "layer forward");  // one NVTX range per layer in nsys
    Tensor out = be_->empty({b.tokens, H});
    auto acts = layer_forward(i, out, h, b, keep && !recompute_);
    if (keep) {
      keep->layer_inputs[i] = h;
      keep->layer_acts[i] = std::move(acts);
    }
    h = out;
  }
  Tensor final_h = be_->empty({b.tokens, H});
  auto head = head_forward(final_h, h, keep != nullptr);
  if (keep) {
    keep->layer_inputs[config_.layers] = h;
    keep->head = std::move(head);
  }
  return final_h;
}

Tensor Model::forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens,
                      const ForwardOptions& opts) {
  Batch b = make_batch(ids, cu_seqlens, opts);
  // Filled aside and published only when the whole forward succeeded.
  std::unique_ptr<Saved> keep = opts.keep ? std::make_unique<Saved>() : nullptr;
  Tensor h = run_layers(b, keep.get());
  Tensor pooled = be_->empty({b.seqs, config_.hidden});
  be_->pool_forward(pooled, h, b.cu_seqlens, opts.pooling);
  Tensor out = pooled;
  if (opts.normalize) {
    out = be_->empty(pooled.shape);
    be_->l2normalize_forward(out, pooled);
  }
  if (keep) {
    keep->pooling = opts.pooling;
    keep->normalize = opts.normalize;
    keep->pooled_raw = pooled;
    keep->batch = std::move(b);
    saved_ = std::move(keep);  // replaces what the last forward(keep) kept
  }
  return out;
}

Tensor Model::hidden_states(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens) {
  Batch b = make_batch(ids, cu_seqlens, ForwardOptions{});
  return run_layers(b, nullptr);
}

void Model::load_lm_head(const std::vector<TensorSource>& sources) {
  if (lm_head_weight_ || config_.tie_word_embeddings) return;  // tied: the head is embed_tokens
  std::vector<WeightTarget> targets;
  auto make = [&](const std::string& name, std::vector<int64_t> shape) {
    auto p = std::make_unique<Param>();
    p->name = name;
    p->value = be_->empty(std::move(shape));
    Param* raw = p.get();
    lm_head_params_.push_back(std::move(p));  // not a model parameter: never trains, never saved
    targets.push_back({name, &raw->value});
    return raw;
  };
  Param* w = make("lm_head.weight", {config_.vocab, config_.hidden});
  Param* b = nullptr;
  for (const auto& s : sources)
    if (s.name == "lm_head.bias") b = make("lm_head.bias", {config_.vocab});
  upload_weights(*be_, sources, targets);
  lm_head_weight_ = w;
  lm_head_bias_ = b;
}

std::vector<double> Model::token_logprobs(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens,
                                          const std::vector<int32_t>& target_start, int64_t vocab_block) {
  Batch b = make_batch(ids, cu_seqlens, ForwardOptions{});
  if (int64_t(target_start.size()) != b.seqs)
    throw Error("scoreTokens: " + std::to_string(target_start.size()) + " target starts for " +
                std::to_string(b.seqs) + " sequences");
  LmHead head = lm_head();
  // rows[n]: the hidden state that predicts targets[n] (the token before it)
  std::vector<int32_t> rows, targets;
  for (int64_t s = 0; s < b.seqs; s++) {
    const int32_t len = cu_seqlens[s + 1] - cu_seqlens[s];
    if (target_start[s] < 1 || target_start[s] > len)
      throw Error("scoreTokens: sequence " + std::to_string(s) + " of " + std::to_string(len) +
                  " tokens: targets must start at a position in [1, " + std::to_string(len) + "], got " +
                  std::to_string(target_start[s]));
    for (int32_t j = target_start[s]; j < len; j++) {
      rows.push_back(cu_seqlens[s] + j - 1);
      targets.push_back(ids[size_t(cu_seqlens[s] + j)]);
    }
  }
  const int64_t N = int64_t(rows.size()), H = config_.hidden, V = config_.vocab;
  std::vector<double> out(static_cast<size_t>(N));
  if (N == 0) return out;
  Tensor h = run_layers(b, nullptr);
  Tensor hn = be_->empty({N, H});
  be_->embedding_forward(hn, h, rows, false);  // gather the predicting rows
  h = Tensor();
  const DType st = be_->act_dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor mx = be_->empty({N}, st), sum = be_->zeros({N}, st), tgt = be_->zeros({N}, st);
  be_->fill(mx, -INFINITY);
  // ~16M logits per block at most; the whole vocabulary when it fits
  const int64_t Vb = std::max<int64_t>(1, std::min(V, vocab_block > 0 ? vocab_block : (int64_t(1) << 24) / N));
  Tensor logits = be_->empty({N, Vb});
  for (int64_t v0 = 0; v0 < V; v0 += Vb) {
    const int64_t n = std::min(Vb, V - v0);
    Tensor lb = n == Vb ? logits : be_->empty({N, n});
    be_->matmul(lb, hn, head.weight->rows(v0, v0 + n), false, true, 1.f, 0.f);  // [N,n] = hn W[v0:v0+n]^T
    if (head.bias) be_->add_bias(lb, head.bias->rows(v0, v0 + n));
    be_->logits_block_update(lb, mx, sum, tgt, targets, v0, head.softcap);
  }
  std::vector<double> m(static_cast<size_t>(N)), z(m), t(m);
  be_->download(m.data(), DType::F64, mx);
  be_->download(z.data(), DType::F64, sum);
  be_->download(t.data(), DType::F64, tgt);
  for (int64_t n = 0; n < N; n++) out[size_t(n)] = t[size_t(n)] - (m[size_t(n)] + std::log(z[size_t(n)]));
  return out;
}

// d(pooled_raw) from d(y), y = x / max(||x||, 1e-12), on the host in F64 ([B,H] is small):
// dx = (dy - y (y . dy)) / ||x|| while ||x|| > 1e-12, else dy / 1e-12.
static std::vector<double> l2normalize_backward_host(const std::vector<double>& x, const std::vector<float>& dy,
                                                     int64_t rows, int64_t cols) {
  std::vector<double> dx(x.size());
  for (int64_t r = 0; r < rows; r++) {
    const double* xr = &x[size_t(r * cols)];
    const float* dyr = &dy[size_t(r * cols)];
    double ss = 0;
    for (int64_t c = 0; c < cols; c++) ss += xr[c] * xr[c];
    const double norm = std::sqrt(ss);
    double* dxr = &dx[size_t(r * cols)];
    if (norm <= 1e-12) {
      for (int64_t c = 0; c < cols; c++) dxr[c] = dyr[c] / 1e-12;
      continue;
    }
    double ydy = 0;
    for (int64_t c = 0; c < cols; c++) ydy += xr[c] / norm * dyr[c];
    for (int64_t c = 0; c < cols; c++) dxr[c] = (dyr[c] - xr[c] / norm * ydy) / norm;
  }
  return dx;
}

void Model::backward(const std::vector<float>& d_pooled) {
  if (!saved_)
    throw Error("backward() needs the activations of a forward() with keep: true (none kept, or already used)");
  std::unique_ptr<Saved> s = std::move(saved_);  // one backward per kept forward
  const Batch& b = s->batch;
  const int64_t H = config_.hidden;
  if (int64_t(d_pooled.size()) != b.seqs * H)
    throw Error("backward: dPooled holds " + std::to_string(d_pooled.size()) + " values, expected [" +
                std::to_string(b.seqs) + "," + std::to_string(H) + "] from the last forward");
  Tensor dpool = be_->empty({b.seqs, H});
  if (s->normalize) {
    std::vector<double> raw(size_t(b.seqs * H));
    be_->download(raw.data(), DType::F64, s->pooled_raw);
    auto dx = l2normalize_backward_host(raw, d_pooled, b.seqs, H);
    be_->upload(dpool, dx.data(), DType::F64);
  } else {
    be_->upload(dpool, d_pooled.data(), DType::F32);
  }
  Tensor dh_final = be_->empty({b.tokens, H});
  be_->pool_backward(dh_final, dpool, b.cu_seqlens, s->pooling);
  Tensor dh = be_->empty({b.tokens, H});
  head_backward(dh, dh_final, s->layer_inputs[config_.layers], s->head.get());
  dh_final = Tensor();
  for (int i = int(config_.layers) - 1; i >= 0; i--) {
    BackendRange range(*be_, "layer backward");
    const Tensor& x = s->layer_inputs[i];
    std::unique_ptr<Activations> acts = std::move(s->layer_acts[i]);
    if (!acts) {  // recompute: the same forward again, this time keeping its activations
      Tensor out = be_->empty({b.tokens, H});
      acts = layer_forward(i, out, x, b, true);
    }
    Tensor dx = be_->empty({b.tokens, H});
    layer_backward(i, dx, dh, x, b, *acts);
    dh = dx;
    s->layer_inputs[i + 1] = Tensor();
  }
  if (embeddings_trainable()) embed_backward(dh, b, s->embed.get());
}

}  // namespace lmdr
