// topk(queries, corpus, numQueries, numCorpus, hidden, k, device[, blockRows]) -> Promise of
// {scores: Float32Array [Q,k'], ids: BigInt64Array [Q,k']}, k' = min(k, numCorpus).
// The inputs are read in place on the worker thread (no copy of a large corpus); references
// keep them alive until the promise settles. Callers must not write to them meanwhile.
#include <memory>
#include <string>

#include "core/topk.h"
#include "napi/common.h"

namespace lmdr::napi {
namespace {

// A Float32Array argument of exactly `expected` elements, kept alive by `ref`.
const float* f32_view(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t expected,
                      std::shared_ptr<Napi::ObjectReference>& ref) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string("topk: ") + what + " must be a Float32Array");
  auto arr = info[i].As<Napi::Float32Array>();
  if (int64_t(arr.ElementLength()) != expected)
    throw Napi::Error::New(env, std::string("topk: ") + what + " has " + std::to_string(arr.ElementLength()) +
                                    " floats, expected " + std::to_string(expected));
  ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(arr.As<Napi::Object>()));
  return arr.Data();
}

int64_t count_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t min) {
  double v = arg_number(info, i, what);
  if (!(v >= double(min)) || v != double(int64_t(v)) || v > 9.0e15)
    throw Napi::Error::New(info.Env(), std::string("topk: ") + what + " must be an integer >= " +
                                           std::to_string(min) + ", got " + std::to_string(v));
  return int64_t(v);
}

Napi::Value Topk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t Q = count_arg(info, 2, "numQueries", 0);
  const int64_t N = count_arg(info, 3, "numCorpus", 1);
  const int64_t H = count_arg(info, 4, "hidden", 1);
  const int64_t k = count_arg(info, 5, "k", 1);
  const std::string device = arg_string(info, 6, "device");
  const int64_t block_rows = info.Length() > 7 && !info[7].IsUndefined() ? count_arg(info, 7, "blockRows", 1) : 0;
  std::shared_ptr<Napi::ObjectReference> qref, cref;
  const float* queries = f32_view(info, 0, "queries", Q * H, qref);
  const float* corpus = f32_view(info, 1, "corpus", N * H, cref);
  Backend* backend = guard(env, [&] { return get_backend(device); });

  auto result = std::make_shared<TopkResult>();
  return PromiseWorker::run(
      env,
      [=] { *result = exact_topk(*backend, queries, Q, corpus, N, H, k, block_rows); },
      [=](Napi::Env env) -> Napi::Value {
        (void)qref;  // released with this closure, on the main thread
        (void)cref;
        auto out = Napi::Object::New(env);
        auto scores = Napi::Float32Array::New(env, result->scores.size());
        std::copy(result->scores.begin(), result->scores.end(), scores.Data());
        auto ids = Napi::BigInt64Array::New(env, result->ids.size());
        std::copy(result->ids.begin(), result->ids.end(), ids.Data());
        out.Set("scores", scores);
        out.Set("ids", ids);
        out.Set("k", Napi::Number::New(env, double(result->k)));
        return out;
      });
}

}  // namespace

void init_search(Napi::Env env, Napi::Object exports) {
  exports.Set("topk", Napi::Function::New(env, Topk, "topk"));
}

}  // namespace lmdr::napi
