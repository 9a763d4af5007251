// Module entry: each concern registers its functions from its own file.
#include <napi.h>

namespace lmdr::napi {
void init_info(Napi::Env env, Napi::Object exports);    // info.cpp
void init_model(Napi::Env env, Napi::Object exports);   // model.cpp
void init_loss(Napi::Env env, Napi::Object exports);    // loss.cpp
void init_search(Napi::Env env, Napi::Object exports);  // search.cpp
void init_ops(Napi::Env env, Napi::Object exports);     // ops.cpp (per-op test hooks)
}  // namespace lmdr::napi

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  lmdr::napi::init_info(env, exports);
  lmdr::napi::init_model(env, exports);
  lmdr::napi::init_loss(env, exports);
  lmdr::napi::init_search(env, exports);
  lmdr::napi::init_ops(env, exports);
  return exports;
}

NODE_API_MODULE(lmdr, Init)
