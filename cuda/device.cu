// Device discovery. Any error from the runtime (no driver: 35, no device: 100) or a count
// of 0 means "use the CPU".
#include <cuda_runtime.h>

#include "cuda_backend.h"

namespace lmdr {

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err) + " (code " + std::to_string(int(err)) + ")";
    cudaGetLastError();
    return info;
  }
  if (count == 0) info.error = "no CUDA devices visible";
  info.device_count = count;
  for (int i = 0; i < count; i++) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess)
      info.devices.push_back(std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                             std::to_string(prop.totalGlobalMem >> 20) + " MiB)");
  }
  return info;
}

}  // namespace lmdr
