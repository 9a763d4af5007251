// loadModel() and the NativeModel object (lib/native.ts): argument checks and conversions
// only; the model itself lives in cpp/core/model.h. forward/hiddenStates/backward/loadModel
// run on the libuv pool; a model runs one call at a time (a second call while one is in
// flight is refused with a clear error instead of racing on the same activations).
#include <atomic>
#include <cmath>
#include <limits>

#include "core/model.h"
#include "napi/common.h"

namespace lmdr::napi {

namespace {

// ---- reading JS objects ----

Napi::Value field(const Napi::Object& o, const char* key) { return o.Get(key); }

double number_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = field(o, key);
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_value(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
    throw Napi::TypeError::New(env, what + " must be an integer, got " + std::to_string(d));
  return int64_t(d);
}

int64_t int_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  return int_value(env, field(o, key), what + "." + key);
}

bool bool_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what, bool fallback,
                bool required) {
  Napi::Value v = field(o, key);
  if (v.IsUndefined() && !required) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(env, what + "." + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string string_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = field(o, key);
  if (!v.IsString()) throw Napi::TypeError::New(env, what + "." + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject() || info[i].IsArray())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

Napi::Array array_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsArray()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an array");
  return info[i].As<Napi::Array>();
}

std::vector<int64_t> shape_value(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, what + " must be an array of integers");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < arr.Length(); i++) shape.push_back(int_value(env, arr.Get(i), what + "[" + std::to_string(i) + "]"));
  return shape;
}

// Float32Array or Float64Array -> doubles.
std::vector<double> float_values(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsTypedArray()) {
    auto t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() == napi_float32_array) {
      auto a = v.As<Napi::Float32Array>();
      return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    }
    if (t.TypedArrayType() == napi_float64_array) {
      auto a = v.As<Napi::Float64Array>();
      return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    }
  }
  throw Napi::TypeError::New(env, what + " must be a Float32Array or Float64Array");
}

Activation parse_activation(Napi::Env env, const std::string& act) {
  if (act == "silu") return Activation::Silu;
  if (act == "gelu") return Activation::Gelu;
  if (act == "gelu_tanh") return Activation::GeluTanh;
  if (act == "relu") return Activation::Relu;
  throw Napi::TypeError::New(env, "config.activation must be 'silu', 'gelu', 'gelu_tanh' or 'relu', got '" + act + "'");
}

ModelConfig parse_config(Napi::Env env, const Napi::Object& o) {
  const std::string w = "config";
  ModelConfig c;
  const std::string arch = string_field(env, o, "arch", w);
  if (arch == "decoder") c.arch = ModelConfig::Arch::Decoder;
  else if (arch == "bert") c.arch = ModelConfig::Arch::Bert;
  else if (arch == "t5") c.arch = ModelConfig::Arch::T5;
  else throw Napi::TypeError::New(env, "config.arch must be 'decoder', 'bert' or 't5', got '" + arch + "'");
  c.hidden = int_field(env, o, "hidden", w);
  c.layers = int_field(env, o, "layers", w);
  c.heads = int_field(env, o, "heads", w);
  c.kv_heads = int_field(env, o, "kvHeads", w);
  c.head_dim = int_field(env, o, "headDim", w);
  c.intermediate = int_field(env, o, "intermediate", w);
  c.vocab = int_field(env, o, "vocab", w);
  c.norm_eps = number_field(env, o, "normEps", w);
  if (c.arch == ModelConfig::Arch::Decoder) {
    c.rope_theta = number_field(env, o, "ropeTheta", w);
    c.qkv_bias = bool_field(env, o, "qkvBias", w, false, false);
    // The architecture description (lib/model/config.ts); every field optional, defaults = llama.
    auto opt_number = [&](const char* key, double fallback) {
      Napi::Value v = field(o, key);
      return v.IsUndefined() || v.IsNull() ? fallback : number_field(env, o, key, w);
    };
    auto opt_string = [&](const char* key, const std::string& fallback) {
      Napi::Value v = field(o, key);
      return v.IsUndefined() ? fallback : string_field(env, o, key, w);
    };
    c.rotary_dim = int64_t(opt_number("rotaryDim", 0));
    c.o_bias = bool_field(env, o, "oBias", w, false, false);
    c.mlp_bias = bool_field(env, o, "mlpBias", w, false, false);
    const std::string norm = opt_string("norm", "rms");
    if (norm == "rms") c.norm = ModelConfig::Norm::Rms;
    else if (norm == "layer") c.norm = ModelConfig::Norm::Layer;
    else throw Napi::TypeError::New(env, "config.norm must be 'rms' or 'layer', got '" + norm + "'");
    c.norm_offset = opt_number("normOffset", 0);
    c.qk_norm = bool_field(env, o, "qkNorm", w, false, false);
    c.parallel_block = bool_field(env, o, "parallelBlock", w, false, false);
    c.sandwich_norms = bool_field(env, o, "sandwichNorms", w, false, false);
    c.fused_qkv = bool_field(env, o, "fusedQkv", w, false, false);
    c.gated_mlp = bool_field(env, o, "gatedMlp", w, true, false);
    c.fused_gate_up = bool_field(env, o, "fusedGateUp", w, false, false);
    c.act = parse_activation(env, opt_string("activation", "silu"));
    c.embed_scale = opt_number("embedScale", 0);
    c.attn_scale = opt_number("attnScale", 0);
    c.attn_softcap = opt_number("attnSoftcap", 0);
    c.final_softcap = opt_number("finalSoftcap", 0);
    c.sliding_window = int64_t(opt_number("slidingWindow", 0));
    Napi::Value sl = field(o, "slidingLayers");
    if (!sl.IsUndefined() && !sl.IsNull()) {
      if (!sl.IsArray()) throw Napi::TypeError::New(env, "config.slidingLayers must be an array of booleans or null");
      auto arr = sl.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) c.sliding_layers.push_back(arr.Get(i).ToBoolean().Value() ? 1 : 0);
    }
    c.tie_word_embeddings = bool_field(env, o, "tieWordEmbeddings", w, false, false);
    Napi::Value rs = field(o, "ropeScaling");
    if (!rs.IsNull() && !rs.IsUndefined()) {
      if (!rs.IsObject()) throw Napi::TypeError::New(env, "config.ropeScaling must be an object or null");
      auto r = rs.As<Napi::Object>();
      c.rope_scaling.factor = number_field(env, r, "factor", "config.ropeScaling");
      c.rope_scaling.low_freq_factor = number_field(env, r, "lowFreqFactor", "config.ropeScaling");
      c.rope_scaling.high_freq_factor = number_field(env, r, "highFreqFactor", "config.ropeScaling");
      c.rope_scaling.original_max_position_embeddings =
          number_field(env, r, "originalMaxPositionEmbeddings", "config.ropeScaling");
      if (!(c.rope_scaling.factor > 0) || !(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
        throw Napi::TypeError::New(env, "config.ropeScaling: factor must be positive and highFreqFactor > lowFreqFactor");
    }
  } else if (c.arch == ModelConfig::Arch::Bert) {
    // the encoder description of BERT: post-norm LayerNorm blocks, biases, erf-GELU MLP
    c.max_positions = int_field(env, o, "maxPositions", w);
    c.type_vocab = int_field(env, o, "typeVocab", w);
    c.norm = ModelConfig::Norm::Layer;
    c.qkv_bias = c.o_bias = c.mlp_bias = true;
    c.gated_mlp = false;
    c.act = Activation::Gelu;
  } else {
    // T5: pre-norm RMS blocks without biases, unscaled attention with a relative position bias
    c.norm = ModelConfig::Norm::Rms;
    c.pre_norm = true;
    c.gated_mlp = bool_field(env, o, "gatedMlp", w, false, false);
    c.act = parse_activation(env, string_field(env, o, "activation", w));
    c.attn_scale = 1;
    c.rel_buckets = int_field(env, o, "relBuckets", w);
    c.rel_max_distance = int_field(env, o, "relMaxDistance", w);
  }
  return c;
}

DType safetensors_dtype(Napi::Env env, const std::string& s, const std::string& what) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "F64") return DType::F64;
  throw Napi::TypeError::New(env, what + ".dtype must be F32, F16, BF16 or F64, got '" + s + "'");
}

std::vector<TensorSource> parse_sources(Napi::Env env, const Napi::Array& arr) {
  std::vector<TensorSource> out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const std::string w = "tensors[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, w + " must be an object");
    auto o = v.As<Napi::Object>();
    TensorSource s;
    s.name = string_field(env, o, "name", w);
    s.file = string_field(env, o, "file", w);
    const int64_t offset = int_field(env, o, "offset", w);
    if (offset < 0) throw Napi::TypeError::New(env, w + ".offset must be non-negative");
    s.offset = uint64_t(offset);
    s.dtype = safetensors_dtype(env, string_field(env, o, "dtype", w), w);
    s.shape = shape_value(env, field(o, "shape"), w + ".shape");
    out.push_back(std::move(s));
  }
  return out;
}

ForwardOptions parse_forward_options(Napi::Env env, const Napi::Object& o) {
  const std::string w = "opts";
  ForwardOptions f;
  const std::string pooling = string_field(env, o, "pooling", w);
  if (pooling == "eos") f.pooling = Pooling::Eos;
  else if (pooling == "cls") f.pooling = Pooling::Cls;
  else if (pooling == "mean") f.pooling = Pooling::Mean;
  else throw Napi::TypeError::New(env, "opts.pooling must be 'eos', 'cls' or 'mean', got '" + pooling + "'");
  f.normalize = bool_field(env, o, "normalize", w, true, true);
  f.train = bool_field(env, o, "train", w, false, false);
  f.keep = bool_field(env, o, "keep", w, false, false);
  Napi::Value seed = field(o, "dropoutSeed");
  if (!seed.IsUndefined()) f.dropout_seed = uint64_t(int_value(env, seed, "opts.dropoutSeed"));
  Napi::Value keys = field(o, "seqKeys");
  if (!keys.IsUndefined()) {
    if (!keys.IsTypedArray() || keys.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "opts.seqKeys must be an Int32Array");
    auto a = keys.As<Napi::Int32Array>();
    f.seq_keys.assign(a.Data(), a.Data() + a.ElementLength());
  }
  return f;
}

LoraSpec parse_lora(Napi::Env env, const Napi::Object& o) {
  const std::string w = "spec";
  LoraSpec s;
  Napi::Value targets = field(o, "targets");
  if (!targets.IsArray()) throw Napi::TypeError::New(env, "spec.targets must be an array of strings");
  auto arr = targets.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value t = arr.Get(i);
    if (!t.IsString()) throw Napi::TypeError::New(env, "spec.targets[" + std::to_string(i) + "] must be a string");
    s.targets.push_back(t.As<Napi::String>().Utf8Value());
  }
  s.r = int_field(env, o, "r", w);
  s.alpha = number_field(env, o, "alpha", w);
  s.dropout = number_field(env, o, "dropout", w);
  s.seed = uint64_t(int_field(env, o, "seed", w));
  return s;
}

OptimizerStep parse_step(Napi::Env env, const Napi::Object& o) {
  const std::string w = "step";
  OptimizerStep s;
  const std::string kind = string_field(env, o, "kind", w);
  if (kind == "adamw") s.kind = OptimizerStep::Kind::AdamW;
  else if (kind == "sgd") s.kind = OptimizerStep::Kind::Sgd;
  else throw Napi::TypeError::New(env, "step.kind must be 'adamw' or 'sgd', got '" + kind + "'");
  s.lr = number_field(env, o, "lr", w);
  s.weight_decay = number_field(env, o, "weightDecay", w);
  s.grad_scale = number_field(env, o, "gradScale", w);
  s.step = int_field(env, o, "step", w);
  if (s.kind == OptimizerStep::Kind::AdamW) {
    s.beta1 = number_field(env, o, "beta1", w);
    s.beta2 = number_field(env, o, "beta2", w);
    s.eps = number_field(env, o, "eps", w);
  }
  return s;
}

Napi::Array host_tensors(Napi::Env env, const std::vector<NamedHost>& tensors) {
  auto arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); i++) {
    auto o = Napi::Object::New(env);
    o.Set("name", tensors[i].name);
    auto shape = Napi::Array::New(env, tensors[i].shape.size());
    for (size_t d = 0; d < tensors[i].shape.size(); d++) shape.Set(uint32_t(d), double(tensors[i].shape[d]));
    o.Set("shape", shape);
    o.Set("data", to_f32(env, tensors[i].data));
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

std::vector<NamedHost> parse_host_tensors(Napi::Env env, const Napi::Array& arr) {
  std::vector<NamedHost> out;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const std::string w = "tensors[" + std::to_string(i) + "]";
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, w + " must be an object");
    auto o = v.As<Napi::Object>();
    NamedHost h;
    h.name = string_field(env, o, "name", w);
    Napi::Value shape = field(o, "shape");
    if (!shape.IsUndefined()) h.shape = shape_value(env, shape, w + ".shape");
    auto values = float_values(env, field(o, "data"), w + ".data");
    h.data.assign(values.begin(), values.end());
    out.push_back(std::move(h));
  }
  return out;
}

Napi::Promise rejected(Napi::Env env, const std::string& message) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(Napi::Error::New(env, message).Value());
  return d.Promise();
}

// ---- the object ----

thread_local Napi::FunctionReference* model_constructor = nullptr;  // one per JS environment (thread)

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceAccessor<&NativeModel::Hidden>("hidden"),
                        InstanceAccessor<&NativeModel::Device>("device"),
                        InstanceMethod<&NativeModel::Forward>("forward"),
                        InstanceMethod<&NativeModel::Forward64>("forward64"),
                        InstanceMethod<&NativeModel::HiddenStates>("hiddenStates"),
                        InstanceMethod<&NativeModel::Backward>("backward"),
                        InstanceMethod<&NativeModel::SetRecompute>("setRecompute"),
                        InstanceMethod<&NativeModel::LoadLmHead>("loadLmHead"),
                        InstanceMethod<&NativeModel::TokenLogprobs>("tokenLogprobs"),
                        InstanceMethod<&NativeModel::AddLora>("addLora"),
                        InstanceMethod<&NativeModel::SetTrainable>("setTrainable"),
                        InstanceMethod<&NativeModel::Params>("params"),
                        InstanceMethod<&NativeModel::SetParam>("setParam"),
                        InstanceMethod<&NativeModel::Grads>("grads"),
                        InstanceMethod<&NativeModel::ZeroGrad>("zeroGrad"),
                        InstanceMethod<&NativeModel::GradSumSquares>("gradSumSquares"),
                        InstanceMethod<&NativeModel::OptimizerStepJs>("optimizerStep"),
                        InstanceMethod<&NativeModel::OptimizerState>("optimizerState"),
                        InstanceMethod<&NativeModel::SetOptimizerState>("setOptimizerState"),
                        InstanceMethod<&NativeModel::BaseWeight>("baseWeight"),
                        InstanceMethod<&NativeModel::Dispose>("dispose")});
  }

  // new NativeModel(External<shared_ptr<Model>>): only loadModel constructs these.
  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeModel is created by loadModel(), not with new");
    model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
    device_ = model_->backend().name();
    hidden_ = model_->config().hidden;
  }

 private:
  // Claims the model for one call; the claim ends when the returned token is released.
  std::shared_ptr<void> claim(Napi::Env env, const char* method) {
    if (!model_) throw Napi::Error::New(env, std::string("NativeModel.") + method + ": the model was disposed");
    bool expected = false;
    if (!busy_->compare_exchange_strong(expected, true))
      throw Napi::Error::New(env, std::string("NativeModel.") + method +
                                      ": another call on this model is still running (await forward/hiddenStates/backward first)");
    auto flag = busy_;
    return std::shared_ptr<void>(nullptr, [flag](void*) { flag->store(false); });
  }

  template <typename Work, typename Done>
  Napi::Value run_async(const Napi::CallbackInfo& info, const char* method, Work work, Done done) {
    Napi::Env env = info.Env();
    std::shared_ptr<void> token;
    try {
      token = claim(env, method);
    } catch (const Napi::Error& e) {
      return rejected(env, e.Message());
    }
    auto model = model_;
    return PromiseWorker::run(
        env,
        [token, model, work]() mutable {
          auto release = std::move(token);  // the model is free again once the work is over, even on error
          work(*model);
        },
        done);
  }

  template <typename F>
  auto run_sync(const Napi::CallbackInfo& info, const char* method, F&& f) {
    auto token = claim(info.Env(), method);
    return guard(info.Env(), [&] { return f(*model_); });
  }

  Napi::Value Hidden(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(hidden_)); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }

  Napi::Value forward_impl(const Napi::CallbackInfo& info, bool f64) {
    auto ids = arg_i32(info, 0, "ids");
    auto cu = arg_i32(info, 1, "cuSeqlens");
    ForwardOptions opts = parse_forward_options(info.Env(), object_arg(info, 2, "opts"));
    struct Out {
      std::vector<float> f32;
      std::vector<double> f64;
    };
    auto out = std::make_shared<Out>();
    return run_async(
        info, "forward",
        [ids = std::move(ids), cu = std::move(cu), opts = std::move(opts), out, f64](Model& m) {
          Tensor pooled = m.forward(ids, cu, opts);
          if (f64) {
            out->f64.resize(size_t(pooled.numel()));
            m.backend().download(out->f64.data(), DType::F64, pooled);
          } else {
            out->f32.resize(size_t(pooled.numel()));
            m.backend().download(out->f32.data(), DType::F32, pooled);
          }
        },
        [out, f64](Napi::Env env) -> Napi::Value {
          if (!f64) return to_f32(env, out->f32);
          auto arr = Napi::Float64Array::New(env, out->f64.size());
          std::copy(out->f64.begin(), out->f64.end(), arr.Data());
          return arr;
        });
  }
  Napi::Value Forward(const Napi::CallbackInfo& info) { return forward_impl(info, false); }
  Napi::Value Forward64(const Napi::CallbackInfo& info) { return forward_impl(info, true); }

  Napi::Value HiddenStates(const Napi::CallbackInfo& info) {
    auto ids = arg_i32(info, 0, "ids");
    auto cu = arg_i32(info, 1, "cuSeqlens");
    auto out = std::make_shared<std::vector<float>>();
    return run_async(
        info, "hiddenStates",
        [ids = std::move(ids), cu = std::move(cu), out](Model& m) {
          Tensor h = m.hidden_states(ids, cu);
          out->resize(size_t(h.numel()));
          m.backend().download(out->data(), DType::F32, h);
        },
        [out](Napi::Env env) -> Napi::Value { return to_f32(env, *out); });
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    auto d = arg_f32(info, 0, "dPooled");
    return run_async(
        info, "backward", [d = std::move(d)](Model& m) { m.backward(d); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value SetRecompute(const Napi::CallbackInfo& info) {
    bool on = arg_bool(info, 0, "on");
    run_sync(info, "setRecompute", [&](Model& m) { m.set_recompute(on); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value LoadLmHead(const Napi::CallbackInfo& info) {
    std::vector<TensorSource> sources = parse_sources(info.Env(), array_arg(info, 0, "tensors"));
    return run_async(
        info, "loadLmHead", [sources = std::move(sources)](Model& m) { m.load_lm_head(sources); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  }

  Napi::Value TokenLogprobs(const Napi::CallbackInfo& info) {
    auto ids = arg_i32(info, 0, "ids");
    auto cu = arg_i32(info, 1, "cuSeqlens");
    auto start = arg_i32(info, 2, "targetStart");
    int64_t block = 0;
    if (info.Length() > 3 && !info[3].IsUndefined()) block = int_value(info.Env(), info[3], "vocabBlock");
    auto out = std::make_shared<std::vector<double>>();
    return run_async(
        info, "tokenLogprobs",
        [ids = std::move(ids), cu = std::move(cu), start = std::move(start), block, out](Model& m) {
          *out = m.token_logprobs(ids, cu, start, block);
        },
        [out](Napi::Env env) -> Napi::Value {
          auto arr = Napi::Float64Array::New(env, out->size());
          std::copy(out->begin(), out->end(), arr.Data());
          return arr;
        });
  }

  Napi::Value AddLora(const Napi::CallbackInfo& info) {
    LoraSpec spec = parse_lora(info.Env(), object_arg(info, 0, "spec"));
    run_sync(info, "addLora", [&](Model& m) { m.add_lora(spec); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    std::string mode = arg_string(info, 0, "mode");
    TrainMode t;
    if (mode == "lora") t = TrainMode::Lora;
    else if (mode == "full") t = TrainMode::Full;
    else if (mode == "none") t = TrainMode::None;
    else throw Napi::TypeError::New(info.Env(), "setTrainable: mode must be 'lora', 'full' or 'none', got '" + mode + "'");
    run_sync(info, "setTrainable", [&](Model& m) { m.set_trainable(t); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    auto p = run_sync(info, "params", [](Model& m) { return m.params(); });
    return host_tensors(info.Env(), p);
  }

  Napi::Value SetParam(const Napi::CallbackInfo& info) {
    std::string name = arg_string(info, 0, "name");
    if (info.Length() < 2) throw Napi::TypeError::New(info.Env(), "setParam: data must be a Float32Array or Float64Array");
    auto data = float_values(info.Env(), info[1], "setParam: data");
    run_sync(info, "setParam", [&](Model& m) { m.set_param(name, data); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value Grads(const Napi::CallbackInfo& info) {
    auto g = run_sync(info, "grads", [](Model& m) { return m.grads(); });
    return host_tensors(info.Env(), g);
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    run_sync(info, "zeroGrad", [](Model& m) { m.zero_grad(); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value GradSumSquares(const Napi::CallbackInfo& info) {
    double s = run_sync(info, "gradSumSquares", [](Model& m) { return m.grad_sum_squares(); });
    return Napi::Number::New(info.Env(), s);
  }

  Napi::Value OptimizerStepJs(const Napi::CallbackInfo& info) {
    OptimizerStep step = parse_step(info.Env(), object_arg(info, 0, "step"));
    run_sync(info, "optimizerStep", [&](Model& m) { m.optimizer_step(step); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value OptimizerState(const Napi::CallbackInfo& info) {
    auto s = run_sync(info, "optimizerState", [](Model& m) { return m.optimizer_state(); });
    return host_tensors(info.Env(), s);
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    auto tensors = parse_host_tensors(info.Env(), array_arg(info, 0, "tensors"));
    run_sync(info, "setOptimizerState", [&](Model& m) { m.set_optimizer_state(tensors); return 0; });
    return info.Env().Undefined();
  }

  Napi::Value BaseWeight(const Napi::CallbackInfo& info) {
    std::string name = arg_string(info, 0, "name");
    bool merged = arg_bool(info, 1, "merged");
    auto w = run_sync(info, "baseWeight", [&](Model& m) { return m.base_weight(name, merged); });
    return to_f32(info.Env(), w);
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (!model_) return info.Env().Undefined();
    auto token = claim(info.Env(), "dispose");
    model_.reset();  // an in-flight worker would hold its own reference; claim() rules that out
    return info.Env().Undefined();
  }

  std::shared_ptr<Model> model_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
  std::string device_;
  int64_t hidden_ = 0;
};

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelConfig config = parse_config(env, object_arg(info, 0, "config"));
  std::vector<TensorSource> sources = parse_sources(env, array_arg(info, 1, "tensors"));
  std::string device = arg_string(info, 2, "device");
  auto loaded = std::make_shared<std::shared_ptr<Model>>();
  return PromiseWorker::run(
      env,
      [config, sources = std::move(sources), device, loaded]() {
        Backend* backend = get_backend(device);
        *loaded = Model::load(config, sources, backend);
      },
      [loaded](Napi::Env env) -> Napi::Value {
        if (!model_constructor) throw Napi::Error::New(env, "loadModel: the addon was not initialised in this environment");
        return model_constructor->New({Napi::External<std::shared_ptr<Model>>::New(env, loaded.get())});
      });
}

}  // namespace

void init_model(Napi::Env env, Napi::Object exports) {
  model_constructor = new Napi::FunctionReference(Napi::Persistent(NativeModel::define(env)));
  env.AddCleanupHook([] {
    delete model_constructor;
    model_constructor = nullptr;
  });
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
}

}  // namespace lmdr::napi
