// Placeholder: filled in by the search work.
#include "napi/common.h"
namespace lmdr::napi {
void init_search(Napi::Env, Napi::Object) {}
}  // namespace lmdr::napi
