// A loaded model: its parameters, LoRA adapters and training state, and the driver that runs
// packed batches through the layers (forward, backward, per-layer recompute). The layer
// math of each architecture lives in its own file (decoder.cpp, bert.cpp).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/batch.h"
#include "core/linear.h"
#include "core/model_config.h"
#include "core/param.h"

namespace lmdr {

// Whatever one architecture keeps from a forward piece for its backward.
struct Activations {
  virtual ~Activations() = default;
};

// A host copy of a named tensor (params, grads, optimiser state).
struct NamedHost {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

class Model {
 public:
  // Builds the graph for `config`, then uploads every tensor it needs from `sources`.
  static std::unique_ptr<Model> load(const ModelConfig& config, const std::vector<TensorSource>& sources,
                                     Backend* backend);
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return *be_; }

  // Pooled embeddings [B, hidden] (compute dtype, L2-normalised when opts.normalize).
  Tensor forward(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens,
                 const ForwardOptions& opts);
  // Last hidden states [T, hidden] (after the final norm for decoders).
  Tensor hidden_states(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens);
  // dL/d(pooled) [B, hidden] host F32 through the last forward(keep); gradients accumulate.
  void backward(const std::vector<float>& d_pooled);
  void set_recompute(bool on) { recompute_ = on; }

  // ---- causal-LM head (decoders) ----
  // Uploads lm_head.weight [vocab, hidden] (and lm_head.bias [vocab] when the sources hold it);
  // not needed when the config ties the head to the embeddings.
  void load_lm_head(const std::vector<TensorSource>& sources);
  // log p(ids[j] | ids[..j-1]) for j = target_start[b] .. L_b - 1 of every sequence b
  // (target_start >= 1), concatenated in order. The vocabulary is processed in blocks, so no
  // [targets x vocab] matrix exists, let alone [tokens x vocab].
  std::vector<double> token_logprobs(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens,
                                     const std::vector<int32_t>& target_start, int64_t vocab_block = 0);

  // ---- LoRA and training state (training.cpp, lora.cpp) ----
  void add_lora(const LoraSpec& spec);
  void set_trainable(TrainMode mode);
  std::vector<Param*> trainable_params();
  std::vector<NamedHost> params();
  void set_param(const std::string& name, const std::vector<double>& data);
  std::vector<NamedHost> grads();
  void zero_grad();
  double grad_sum_squares();
  void optimizer_step(const OptimizerStep& step);
  std::vector<NamedHost> optimizer_state();
  void set_optimizer_state(const std::vector<NamedHost>& tensors);
  std::vector<float> base_weight(const std::string& name, bool merged);

 protected:
  Model(const ModelConfig& config, Backend* backend) : config_(config), be_(backend) {}

  // Registers a base weight the checkpoint must provide with exactly this shape.
  Param* add_param(const std::string& name, std::vector<int64_t> shape);
  Linear* add_linear(const std::string& module, int64_t in, int64_t out, bool bias);

  // ---- what each architecture provides ----
  // Checks the batch against architecture limits (e.g. BERT's max positions).
  virtual void check_batch(const Batch&) const {}
  // h[T,H] (overwritten) from the batch's ids.
  virtual std::unique_ptr<Activations> embed_forward(Tensor& h, const Batch& b, bool keep) = 0;
  virtual void embed_backward(const Tensor& dh, const Batch& b, Activations* acts) = 0;
  virtual std::unique_ptr<Activations> layer_forward(int layer, Tensor& out, const Tensor& x, const Batch& b,
                                                     bool keep) = 0;
  // dx (overwritten) from dout; x is the layer's input, acts what layer_forward(keep) stored.
  virtual void layer_backward(int layer, Tensor& dx, const Tensor& dout, const Tensor& x, const Batch& b,
                              Activations& acts) = 0;
  // After the last layer: the decoders' final norm; identity for BERT (out = x).
  virtual std::unique_ptr<Activations> head_forward(Tensor& out, const Tensor& x, bool keep) = 0;
  virtual void head_backward(Tensor& dx, const Tensor& dout, const Tensor& x, Activations* acts) = 0;
  bool embeddings_trainable() const { return mode_ == TrainMode::Full; }
  // The head's weight [vocab, hidden], optional bias [vocab] and final logit soft-cap.
  struct LmHead {
    const Tensor* weight = nullptr;
    const Tensor* bias = nullptr;
    double softcap = 0;
  };
  virtual LmHead lm_head() { throw Error("scoreTokens: this architecture has no causal-LM head"); }
  Param* lm_head_weight_ = nullptr;
  Param* lm_head_bias_ = nullptr;

  ModelConfig config_;
  Backend* be_;
  std::vector<std::unique_ptr<Param>> params_;  // base weights in load order, then LoRA
  std::map<std::string, Param*> by_name_;
  std::vector<std::unique_ptr<Linear>> linears_;  // in module order

 private:
  Batch make_batch(const std::vector<int32_t>& ids, const std::vector<int32_t>& cu_seqlens,
                   const ForwardOptions& opts) const;
  void load_weights(const std::vector<TensorSource>& sources);
  void allocate_training_state(Param& p);

  // What the last forward(keep) left for backward.
  struct Saved {
    Batch batch;
    Pooling pooling = Pooling::Eos;
    bool normalize = false;
    Tensor pooled_raw;  // [B,H] before L2 normalisation
    std::unique_ptr<Activations> embed, head;
    std::vector<Tensor> layer_inputs;  // [layers + 1]: the last is the head's input
    std::vector<std::unique_ptr<Activations>> layer_acts;  // empty per layer when recomputing
  };
  Tensor run_layers(const Batch& b, Saved* keep);  // final hidden states [T,H]; keep: store for backward
  std::unique_ptr<Saved> saved_;
  std::vector<std::unique_ptr<Param>> lm_head_params_;
  bool recompute_ = false;
  TrainMode mode_ = TrainMode::None;
  bool has_lora_ = false;
  int64_t optimizer_steps_ = 0;  // the last step number taken (checkpointed as "step")
};

}  // namespace lmdr
