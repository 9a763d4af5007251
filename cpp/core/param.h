// A named model parameter with its training state. Ops read `value` (compute dtype); the
// optimiser updates `master` when the backend trains in a wider dtype than it computes in.
#pragma once
#include <string>

#include "core/backend.h"

namespace lmdr {

struct Param {
  std::string name;
  Tensor value;                       // act_dtype: what the forward/backward ops read
  Tensor master;                      // param_dtype copy, only when trainable and param != act dtype
  Tensor grad, exp_avg, exp_avg_sq;   // param_dtype, grad only while trainable, moments after a step
  bool trainable = false;
  bool lora = false;                  // a LoRA A/B matrix (trains in 'lora' mode)

  Tensor& updated() { return master.defined() ? master : value; }  // what the optimiser writes
};

}  // namespace lmdr
