// Shared N-API glue: argument checks, typed-array access, and running work off the main
// thread. Every native error reaches JS as an exception; nothing aborts the process.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace lmdr::napi {

inline std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}
inline double arg_number(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
inline bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}
template <typename T, napi_typedarray_type Kind>
std::vector<T> arg_typed(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != Kind)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " has the wrong typed-array type");
  auto arr = info[i].As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(arr.Data(), arr.Data() + arr.ElementLength());
}
inline std::vector<float> arg_f32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return arg_typed<float, napi_float32_array>(info, i, what);
}
inline std::vector<int32_t> arg_i32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return arg_typed<int32_t, napi_int32_array>(info, i, what);
}

inline Napi::Float32Array to_f32(Napi::Env env, const std::vector<float>& v) {
  auto out = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), out.Data());
  return out;
}

// Runs `work` on the libuv pool and resolves the promise with `done(env)`.
// Exceptions from work (lmdr::Error, std::exception) reject the promise with their message.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  PromiseWorker(Napi::Env env, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnOK() override {
    try {
      deferred_.Resolve(done_ ? done_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(Env(), e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  // Queue and return the promise.
  static Napi::Promise run(Napi::Env env, Work work, Done done) {
    auto* w = new PromiseWorker(env, std::move(work), std::move(done));
    auto p = w->promise();
    w->Queue();
    return p;
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
};

// Synchronous calls: turn C++ exceptions into JS exceptions.
template <typename F>
auto guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace lmdr::napi
