// Placeholder: filled in by the ops work.
#include "napi/common.h"
namespace lmdr::napi {
void init_ops(Napi::Env, Napi::Object) {}
}  // namespace lmdr::napi
