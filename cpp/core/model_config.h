// Plain descriptions the N-API layer fills from JS objects (see lib/native.ts): the model's
// shape, where its tensors live, LoRA, forward options and one optimiser step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"

namespace lmdr {

struct ModelConfig {
  // Decoder: decoder.cpp; Bert and T5: the encoder graph (encoder.cpp), the arch picks tensor names
  enum class Arch : uint8_t { Decoder, Bert, T5 };
  Arch arch = Arch::Decoder;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  double norm_eps = 1e-6;
  // decoder: one graph, and this description of what each architecture does differently
  // (lib/model/config.ts fills it from config.json per model_type)
  double rope_theta = 10000;
  RopeScaling rope_scaling;  // factor 0 = none
  int64_t rotary_dim = 0;    // rotated dims per head (phi: partial_rotary_factor); 0 = head_dim
  bool qkv_bias = false;     // q/k/v biases (qwen2, phi)
  bool o_bias = false;       // output projection bias (phi "dense")
  bool mlp_bias = false;     // fc1/fc2 biases (phi)
  enum class Norm : uint8_t { Rms, Layer };  // RMSNorm, or LayerNorm with bias (phi)
  Norm norm = Norm::Rms;
  double norm_offset = 0;    // RMSNorm scales by (w + offset): 1 for Gemma's (1 + w)
  bool qk_norm = false;      // per-head RMSNorm of q and k before RoPE (qwen3 q_norm/k_norm)
  bool parallel_block = false;  // phi: h + attn(ln(h)) + mlp(ln(h)), one norm per layer
  bool sandwich_norms = false;  // gemma2: post_attention, pre_ and post_feedforward norms
  bool fused_qkv = false;       // phi3 qkv_proj [q|k|v]
  bool gated_mlp = true;        // act(gate) * up -> down; false: fc1 -> act -> fc2 (phi)
  bool fused_gate_up = false;   // phi3 gate_up_proj [gate|up]
  Activation act = Activation::Silu;
  double embed_scale = 0;       // > 0: embeddings times this (gemma: sqrt(hidden) in the checkpoint dtype)
  double attn_scale = 0;        // > 0: score scale (gemma2: query_pre_attn_scalar^-0.5); 0 = 1/sqrt(head_dim)
  double attn_softcap = 0;      // gemma2 attn_logit_softcapping
  double final_softcap = 0;     // gemma2 final_logit_softcapping (LM head)
  int64_t sliding_window = 0;   // with sliding_layers: the layers that attend within a window
  std::vector<uint8_t> sliding_layers;  // empty = none; else one flag per layer
  bool tie_word_embeddings = false;     // LM head = embed_tokens
  // encoders: bert's absolute positions; t5's pre-norm blocks and relative position bias
  int64_t max_positions = 0, type_vocab = 0;
  bool pre_norm = false;          // h + f(norm(h)) and a final norm (t5); else norm(h + f(h)) (bert)
  int64_t rel_buckets = 0;        // t5 relative_attention_num_buckets (bidirectional)
  int64_t rel_max_distance = 0;   // t5 relative_attention_max_distance
};

// One tensor inside a safetensors file (byte offset absolute in the file).
struct TensorSource {
  std::string name, file;
  uint64_t offset = 0;
  DType dtype = DType::F32;  // F32, F16, BF16, F64
  std::vector<int64_t> shape;
};

// PEFT LoRA: y = x W^T + b + dropout(x) A^T B^T * alpha / r.
struct LoraSpec {
  std::vector<std::string> targets;  // PEFT target_modules: name == target or ends with "." + target
  int64_t r = 8;
  double alpha = 16, dropout = 0;
  uint64_t seed = 0;  // initialisation of A
};

struct ForwardOptions {
  Pooling pooling = Pooling::Eos;
  bool normalize = true;
  bool train = false;  // LoRA dropout on
  bool keep = false;   // keep what backward() needs
  uint64_t dropout_seed = 0;
  std::vector<int32_t> seq_keys;  // one per sequence; empty = index in the batch
};

struct OptimizerStep {
  enum class Kind : uint8_t { AdamW, Sgd };
  Kind kind = Kind::AdamW;
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;  // 1-based
  double grad_scale = 1;
};

enum class TrainMode : uint8_t { None, Lora, Full };

}  // namespace lmdr
