// Picks a backend by device name. The CUDA side exists only in builds with nvcc; a build
// without it answers like MLX's no_gpu backend: compiled=false and a clear reason.
#include "core/backend.h"
#include "cpu/cpu_backend.h"
#ifdef LMDR_CUDA
#include "../cuda/cuda_backend.h"
#endif

#include <cstdlib>

namespace lmdr {

Backend* get_backend(const std::string& device_in) {
  std::string device = device_in;
  if (device.empty() || device == "auto") {
    const char* env = std::getenv("LMDR_DEVICE");
    if (env && *env) device = env;
    else device = cuda_info().device_count > 0 ? "cuda:0" : "cpu";
  }
  if (device == "cpu") return cpu_backend_f32();
  if (device == "cpu-f64") return cpu_backend_f64();
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      char* end = nullptr;
      index = int(std::strtol(device.c_str() + 5, &end, 10));
      if (*end) throw Error("unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
    }
    CudaInfo info = cuda_info();
    if (!info.compiled) throw Error("--device " + device + ": " + info.error);
    if (info.device_count == 0) throw Error("--device " + device + ": no CUDA device available (" + info.error + ")");
    if (index < 0 || index >= info.device_count)
      throw Error("--device " + device + ": only " + std::to_string(info.device_count) + " CUDA device(s) visible");
#ifdef LMDR_CUDA
    return cuda_backend(index);
#endif
  }
  throw Error("unknown device '" + device + "' (expected cpu, cuda or cuda:N)");
}

#ifndef LMDR_CUDA
CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = false;
  info.error = "this build has no CUDA backend (built without nvcc, with LMDR_NO_CUDA=ON, or by the CPU-only node-gyp fallback)";
  return info;
}
#endif

}  // namespace lmdr
