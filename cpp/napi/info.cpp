#include "napi/common.h"

namespace lmdr::napi {

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CudaInfo cuda = cuda_info();
  auto out = Napi::Object::New(env);
  out.Set("version", LMDR_VERSION);
  auto backends = Napi::Array::New(env);
  backends.Set(0u, "cpu");
  backends.Set(1u, "cpu-f64");
  if (cuda.compiled) backends.Set(2u, "cuda");
  out.Set("backends", backends);
  out.Set("cudaCompiled", cuda.compiled);
  auto devices = Napi::Array::New(env);
  for (size_t i = 0; i < cuda.devices.size(); i++) devices.Set(uint32_t(i), cuda.devices[i]);
  out.Set("cudaDevices", devices);
  out.Set("cudaError", cuda.error);
  out.Set("flags", LMDR_BUILD_FLAGS);
  return out;
}

void init_info(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
}

}  // namespace lmdr::napi
