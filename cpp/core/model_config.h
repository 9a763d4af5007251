// Plain descriptions the N-API layer fills from JS objects (see lib/native.ts): the model's
// shape, where its tensors live, LoRA, forward options and one optimiser step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"

namespace lmdr {

struct ModelConfig {
  enum class Arch : uint8_t { Decoder, Bert };
  Arch arch = Arch::Decoder;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  double norm_eps = 1e-6;
  // decoder
  double rope_theta = 10000;
  RopeScaling rope_scaling;  // factor 0 = none
  bool qkv_bias = false;     // qwen2
  // bert
  int64_t max_positions = 0, type_vocab = 0;
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
