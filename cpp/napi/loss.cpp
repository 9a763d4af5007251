// infonce(q, p, batch, group, hidden, temperature, cosine, device) -> { loss, dq, dp }:
// the fused contrastive loss on float32 host embeddings (sync: one small fused op).
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
  return guard(env, [&]() -> Napi::Value {
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
    double loss = be->infonce_forward_backward(dq, dp, qt, pt, G, temperature, cosine);
    be->synchronize();
    auto dq_out = Napi::Float32Array::New(env, size_t(B * H));
    auto dp_out = Napi::Float32Array::New(env, size_t(B * G * H));
    be->download(dq_out.Data(), DType::F32, dq);
    be->download(dp_out.Data(), DType::F32, dp);
    auto out = Napi::Object::New(env);
    out.Set("loss", loss);
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
