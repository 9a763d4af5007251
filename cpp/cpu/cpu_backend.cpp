// TEMPORARY stub, replaced by the CPU ops work.
#include "cpu/cpu_backend.h"
namespace lmdr {
Backend* cpu_backend_f32() { throw Error("cpu backend not built yet"); }
Backend* cpu_backend_f64() { throw Error("cpu backend not built yet"); }
}  // namespace lmdr
