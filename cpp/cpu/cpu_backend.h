#pragma once
#include "core/backend.h"

namespace lmdr {
Backend* cpu_backend_f32();  // float32 compute: the default CPU backend
Backend* cpu_backend_f64();  // float64 compute: finite-difference gradient checks, reference comparisons
}  // namespace lmdr
