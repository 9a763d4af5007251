// Rotary inverse frequencies exactly as Hugging Face computes them (float32), with the
// Llama-3 "rope_scaling" adjustment. The backends take them as F64 on the host.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace lmdr {

// [head_dim / 2]: 1 / theta^(2i / head_dim), then scaled when scaling.factor > 0.
std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling);

}  // namespace lmdr
