#pragma once
#include "../cpp/core/backend.h"

namespace lmdr {
Backend* cuda_backend(int device_index);  // one backend per device, created on first use
}  // namespace lmdr
