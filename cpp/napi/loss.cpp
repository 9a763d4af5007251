// Placeholder: filled in by the loss work.
#include "napi/common.h"
namespace lmdr::napi {
void init_loss(Napi::Env, Napi::Object) {}
}  // namespace lmdr::napi
