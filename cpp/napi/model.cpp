// Placeholder: filled in by the model work.
#include "napi/common.h"
namespace lmdr::napi {
void init_model(Napi::Env, Napi::Object) {}
}  // namespace lmdr::napi
