// Checkpoint tensors -> backend tensors. Files are mapped read-only, every byte range is
// re-checked against the file size, and each tensor is converted to the backend's dtype.
#pragma once
#include <string>
#include <vector>

#include "core/model_config.h"

namespace lmdr {

struct WeightTarget {
  std::string name;  // canonical name, looked up in the sources
  Tensor* dst;       // allocated with the expected shape; filled by upload_weights
};

// Missing tensors and wrong shapes are lmdr::Error naming the tensor and the expected shape.
void upload_weights(Backend& be, const std::vector<TensorSource>& sources, const std::vector<WeightTarget>& targets);

}  // namespace lmdr
