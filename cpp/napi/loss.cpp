// infonce(q, p, batch, group, hidden, temperature, cosine, device, modes?) -> { loss, contrastive,
// distill, dq, dp }: the fused retrieval loss on float32 host embeddings (sync: one small fused
// op). modes (optional) = { inBatch, contrastiveWeight, distill: "none"|"kl"|"stable",
// distillWeight, teacherTemperature, studentTemperature, teacher: Float64Array[batch*group] }.
#include <cmath>

#include "napi/common.h"

namespace lmdr::napi {
namespace {

Napi::Value InfoNce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<float> q = arg_f32(info, 0, "infonce: q");
  std::vector<float> p = arg_f32(info, 1, "infonce: p");
  double batch = arg_number(info, 2, "infonce: batch"), group = arg_number(info, 3, "infonce: group");
  double hidden = arg_number(info, 4, "infonce: hidden"), temperature = arg_number(info, 5, "infonce: temperature");
  bool cosine = arg_bool(info, 6, "infonce: cosine");
  std::string device = arg_string(info, 7, "infonce: device");
  LossSpec spec;
  std::string distill = "none";
  if (info.Length() > 8 && !info[8].IsUndefined()) {
    if (!info[8].IsObject()) throw Napi::TypeError::New(env, "infonce: modes must be an object");
    Napi::Object m = info[8].As<Napi::Object>();
    auto get = [&](const char* key) { return m.Has(key) ? m.Get(key) : env.Undefined(); };
    auto num = [&](const char* key, double fallback) {
      Napi::Value v = get(key);
      if (v.IsUndefined()) return fallback;
      if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("infonce: modes.") + key + " must be a number");
      return v.As<Napi::Number>().DoubleValue();
    };
    Napi::Value ib = get("inBatch");
    if (!ib.IsUndefined()) {
      if (!ib.IsBoolean()) throw Napi::TypeError::New(env, "infonce: modes.inBatch must be a boolean");
      spec.in_batch = ib.As<Napi::Boolean>().Value();
    }
    Napi::Value d = get("distill");
    if (!d.IsUndefined()) {
      if (!d.IsString()) throw Napi::TypeError::New(env, "infonce: modes.distill must be a string");
      distill = d.As<Napi::String>().Utf8Value();
    }
    spec.contrastive_weight = num("contrastiveWeight", 1);
    spec.distill_weight = num("distillWeight", distill == "none" ? 0 : 1);
    spec.teacher_temperature = num("teacherTemperature", 1);
    spec.student_temperature = num("studentTemperature", 1);
    Napi::Value t = get("teacher");
    if (!t.IsUndefined()) {
      if (!t.IsTypedArray() || t.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
        throw Napi::TypeError::New(env, "infonce: modes.teacher must be a Float64Array");
      auto a = t.As<Napi::Float64Array>();
      spec.teacher.assign(a.Data(), a.Data() + a.ElementLength());
    }
  }
  return guard(env, [&]() -> Napi::Value {
    spec.distill = parse_distill(distill);
    auto whole = [](double v) { return v >= 1 && v == std::floor(v) && v < 9e15; };
    if (!whole(batch) || !whole(group) || !whole(hidden))
      throw Error("infonce: batch, group and hidden must be positive integers (got " + std::to_string(batch) + ", " +
                  std::to_string(group) + ", " + std::to_string(hidden) + ")");
    if (!(temperature > 0) || !std::isfinite(temperature))
      throw Error("infonce: temperature must be > 0, got " + std::to_string(temperature));
    int64_t B = int64_t(batch), G = int64_t(group), H = int64_t(hidden);
    if (int64_t(q.size()) != B * H)
      throw Error("infonce: q has " + std::to_string(q.size()) + " values, expected batch*hidden = " + std::to_string(B * H));
    if (int64_t(p.size()) != B * G * H)
      throw Error("infonce: p has " + std::to_string(p.size()) + " values, expected batch*group*hidden = " +
                  std::to_string(B * G * H));
    Backend* be = get_backend(device);
    DType dt = be->param_dtype();
    Tensor qt = be->empty({B, H}, dt), pt = be->empty({B * G, H}, dt);
    Tensor dq = be->empty({B, H}, dt), dp = be->empty({B * G, H}, dt);
    be->upload(qt, q.data(), DType::F32);
    be->upload(pt, p.data(), DType::F32);
    spec.group = G;
    spec.temperature = temperature;
    spec.cosine = cosine;
    LossParts parts = be->infonce_forward_backward(dq, dp, qt, pt, spec);
    be->synchronize();
    auto dq_out = Napi::Float32Array::New(env, size_t(B * H));
    auto dp_out = Napi::Float32Array::New(env, size_t(B * G * H));
    be->download(dq_out.Data(), DType::F32, dq);
    be->download(dp_out.Data(), DType::F32, dp);
    auto out = Napi::Object::New(env);
    out.Set("loss", parts.loss);
    out.Set("contrastive", parts.contrastive);
    out.Set("distill", parts.distill);
    out.Set("dq", dq_out);
    out.Set("dp", dp_out);
    return out;
  });
}

}  // namespace

void init_loss(Napi::Env env, Napi::Object exports) {
  exports.Set("infonce", Napi::Function::New(env, InfoNce));
}

}  // namespace lmdr::napi
