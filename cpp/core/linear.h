// Linear layer y = x W^T + b with an optional PEFT LoRA branch
// + dropout(x) A^T B^T * alpha/r. Frozen weights get no gradient work at all.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/batch.h"
#include "core/param.h"

namespace lmdr {

struct LoraAdapter {
  Param* A = nullptr;  // [r, in]
  Param* B = nullptr;  // [out, r]
  int64_t r = 0;
  double scale = 1;    // alpha / r
  double dropout = 0;
  uint64_t salt = 0;   // per-module: each adapter draws its own dropout mask
};

// What backward needs from a forward beyond the layer input x.
struct LinearActs {
  Tensor lora_u;  // [T, r] = dropout(x) A^T
};

class Linear {
 public:
  std::string module;  // HF module path without the model prefix, e.g. "layers.0.self_attn.q_proj"
  Param* weight = nullptr;  // [out, in]
  Param* bias = nullptr;    // [out] or null
  int64_t in = 0, out = 0;
  std::unique_ptr<LoraAdapter> lora;

  // y[T,out] (overwritten) from x[T,in]. keep != null: store what backward needs.
  void forward(Backend& be, Tensor& y, const Tensor& x, const Batch& batch, LinearActs* keep) const;
  // dx[T,in] (= or += when accumulate_dx; null = not needed). Gradients accumulate into the
  // trainable params only.
  void backward(Backend& be, Tensor* dx, bool accumulate_dx, const Tensor& dy, const Tensor& x,
                const Batch& batch, const LinearActs& acts) const;

 private:
  Tensor dropped(Backend& be, const Tensor& x, const Batch& batch) const;  // x itself when off
  uint64_t dropout_seed(const Batch& batch) const;
};

}  // namespace lmdr
