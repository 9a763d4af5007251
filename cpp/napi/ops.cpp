// Test hook: runOp(device, opName, args) runs ONE backend op on float64 host data, so tests can
// check every op of every backend against a plain reference (ggml's test-backend-ops idea).
// args holds the op's input tensors as Float64Array (flat, row-major), its sizes and scalars as
// numbers/booleans, and host int arrays (cuSeqlens, ids) as Int32Array. Outputs the op
// overwrites are filled with NaN first, so an element the op forgets to write shows up.
// Outputs it accumulates into are taken from args (their initial values). Returns
// { <output name>: Float64Array, ... } (and numbers for scalar results such as loss).
#include <algorithm>
#include <cmath>
#include <map>

#include "napi/common.h"

namespace lmdr::napi {
namespace {

class OpCall {
 public:
  OpCall(Napi::Env env, Backend* be, Napi::Object args, std::string op)
      : env_(env), be_(be), args_(args), op_(std::move(op)) {}

  int64_t dim(const char* name) {
    double v = number(name);
    if (v < 0 || v != std::floor(v)) fail(std::string(name) + " must be a non-negative integer");
    return int64_t(v);
  }
  double number(const char* name) {
    Napi::Value v = args_.Get(name);
    if (!v.IsNumber()) fail(std::string("args.") + name + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  double number_or(const char* name, double fallback) {
    return args_.Has(name) && !args_.Get(name).IsUndefined() ? number(name) : fallback;
  }
  bool flag(const char* name) {
    Napi::Value v = args_.Get(name);
    if (!v.IsBoolean()) fail(std::string("args.") + name + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  bool has(const char* name) { return args_.Has(name) && !args_.Get(name).IsUndefined(); }
  std::string text(const char* name) {
    Napi::Value v = args_.Get(name);
    if (!v.IsString()) fail(std::string("args.") + name + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  }
  std::vector<int32_t> ints(const char* name) {
    Napi::Value v = args_.Get(name);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(std::string("args.") + name + " must be an Int32Array");
    auto a = v.As<Napi::Int32Array>();
    return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
  }
  std::vector<double> doubles(const char* name) {
    Napi::Value v = args_.Get(name);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      fail(std::string("args.") + name + " must be a Float64Array");
    auto a = v.As<Napi::Float64Array>();
    return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
  }
  // An input tensor (or the initial value of an accumulated output) of the given shape.
  Tensor in(const char* name, std::vector<int64_t> shape) {
    std::vector<double> data = doubles(name);
    Tensor t = be_->empty(shape);
    if (int64_t(data.size()) != t.numel())
      fail(std::string("args.") + name + " has " + std::to_string(data.size()) + " elements, expected " +
           std::to_string(t.numel()) + " for shape " + t.shape_str());
    be_->upload(t, data.data(), DType::F64);
    return t;
  }
  // An overwritten output: poisoned with NaN.
  Tensor out(std::vector<int64_t> shape) {
    Tensor t = be_->empty(std::move(shape));
    be_->fill(t, NAN);
    return t;
  }
  void result(const char* name, const Tensor& t) {
    be_->synchronize();
    auto arr = Napi::Float64Array::New(env_, size_t(t.numel()));
    be_->download(arr.Data(), DType::F64, t);
    results_.Set(name, arr);
  }
  void result(const char* name, double v) { results_.Set(name, Napi::Number::New(env_, v)); }
  Napi::Object results() { return results_; }
  [[noreturn]] void fail(const std::string& why) { throw Error("runOp " + op_ + ": " + why); }

 private:
  Napi::Env env_;
  Backend* be_;
  Napi::Object args_;
  std::string op_;
  Napi::Object results_ = Napi::Object::New(env_);
};

Pooling pooling_mode(OpCall& c) {
  std::string m = c.text("mode");
  if (m == "eos") return Pooling::Eos;
  if (m == "cls") return Pooling::Cls;
  if (m == "mean") return Pooling::Mean;
  c.fail("mode must be eos, cls or mean, got '" + m + "'");
}

std::vector<uint64_t> row_keys(OpCall& c) {
  std::vector<uint64_t> keys;
  for (double k : c.doubles("rowKeys")) keys.push_back(uint64_t(k));
  return keys;
}

void run(Backend* be, const std::string& op, OpCall& c) {
  if (op == "upload") {  // raw host values of another dtype -> the backend's compute dtype
    std::string dt = c.text("dtype");
    std::vector<int32_t> raw = c.ints("raw");  // one element each: F16/BF16 bit patterns, F32 bits, I32 values
    int64_t n = int64_t(raw.size());
    Tensor t = c.out({n});
    if (dt == "F16" || dt == "BF16") {
      std::vector<uint16_t> bits(raw.begin(), raw.end());
      be->upload(t, bits.data(), dt == "F16" ? DType::F16 : DType::BF16);
    } else if (dt == "F32" || dt == "I32") {
      be->upload(t, raw.data(), dt == "F32" ? DType::F32 : DType::I32);
    } else {
      c.fail("dtype must be F16, BF16, F32 or I32, got '" + dt + "'");
    }
    c.result("x", t);
  } else if (op == "matmul") {
    int64_t M = c.dim("M"), N = c.dim("N"), K = c.dim("K");
    bool ta = c.flag("transA"), tb = c.flag("transB");
    Tensor A = c.in("A", ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K});
    Tensor B = c.in("B", tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
    Tensor C = c.has("C") ? c.in("C", {M, N}) : c.out({M, N});
    // repeat > 1 (timing scripts): run the same product again; with beta = 0 the result is unchanged
    int64_t repeat = c.has("repeat") ? c.dim("repeat") : 1;
    for (int64_t r = 0; r < std::max<int64_t>(repeat, 1); r++)
      be->matmul(C, A, B, ta, tb, float(c.number_or("alpha", 1)), float(c.number_or("beta", 0)));
    c.result("C", C);
  } else if (op == "add_bias") {
    int64_t R = c.dim("rows"), N = c.dim("N");
    Tensor y = c.in("y", {R, N}), bias = c.in("bias", {N});
    be->add_bias(y, bias);
    c.result("y", y);
  } else if (op == "bias_backward") {
    int64_t R = c.dim("rows"), N = c.dim("N");
    Tensor db = c.in("dbias", {N}), dy = c.in("dy", {R, N});
    be->bias_backward(db, dy);
    c.result("dbias", db);
  } else if (op == "add") {
    int64_t n = c.dim("n");
    Tensor a = c.in("a", {n}), b = c.in("b", {n}), o = c.out({n});
    be->add(o, a, b);
    c.result("out", o);
  } else if (op == "scale") {
    Tensor x = c.in("x", {c.dim("n")});
    be->scale(x, c.number("s"));
    c.result("x", x);
  } else if (op == "axpy") {
    int64_t n = c.dim("n");
    Tensor y = c.in("y", {n}), x = c.in("x", {n});
    be->axpy(y, c.number("a"), x);
    c.result("y", y);
  } else if (op == "fill") {
    Tensor x = c.out({c.dim("n")});
    be->fill(x, c.number("value"));
    c.result("x", x);
  } else if (op == "copy") {
    int64_t n = c.dim("n");
    Tensor x = c.in("x", {n}), y = c.out({n});
    be->copy(y, x);
    c.result("y", y);
  } else if (op == "rmsnorm_forward") {
    int64_t R = c.dim("rows"), H = c.dim("H");
    Tensor x = c.in("x", {R, H}), w = c.in("w", {H}), o = c.out({R, H}), rstd = c.out({R});
    be->rmsnorm_forward(o, rstd, x, w, c.number("eps"), c.number_or("wOffset", 0));
    c.result("out", o);
    c.result("rstd", rstd);
  } else if (op == "rmsnorm_backward") {
    int64_t R = c.dim("rows"), H = c.dim("H");
    Tensor dout = c.in("dout", {R, H}), x = c.in("x", {R, H}), w = c.in("w", {H}), rstd = c.in("rstd", {R});
    Tensor dx = c.out({R, H});
    Tensor dw = c.has("dw") ? c.in("dw", {H}) : Tensor();
    be->rmsnorm_backward(dx, dw.defined() ? &dw : nullptr, dout, x, w, rstd, c.number_or("wOffset", 0));
    c.result("dx", dx);
    if (dw.defined()) c.result("dw", dw);
  } else if (op == "layernorm_forward") {
    int64_t R = c.dim("rows"), H = c.dim("H");
    Tensor x = c.in("x", {R, H}), w = c.in("w", {H}), b = c.in("b", {H});
    Tensor o = c.out({R, H}), mean = c.out({R}), rstd = c.out({R});
    be->layernorm_forward(o, mean, rstd, x, w, b, c.number("eps"));
    c.result("out", o);
    c.result("mean", mean);
    c.result("rstd", rstd);
  } else if (op == "layernorm_backward") {
    int64_t R = c.dim("rows"), H = c.dim("H");
    Tensor dout = c.in("dout", {R, H}), x = c.in("x", {R, H}), w = c.in("w", {H});
    Tensor mean = c.in("mean", {R}), rstd = c.in("rstd", {R}), dx = c.out({R, H});
    Tensor dw = c.has("dw") ? c.in("dw", {H}) : Tensor();
    Tensor db = c.has("db") ? c.in("db", {H}) : Tensor();
    be->layernorm_backward(dx, dw.defined() ? &dw : nullptr, db.defined() ? &db : nullptr, dout, x, w, mean, rstd);
    c.result("dx", dx);
    if (dw.defined()) c.result("dw", dw);
    if (db.defined()) c.result("db", db);
  } else if (op == "rope_forward" || op == "rope_backward") {
    std::vector<int32_t> cu = c.ints("cuSeqlens");
    int64_t heads = c.dim("heads"), D = c.dim("D");
    Tensor x = c.in("x", {cu.empty() ? 0 : int64_t(cu.back()), heads, D});
    std::vector<double> inv_freq = c.doubles("invFreq");
    if (op == "rope_forward") be->rope_forward(x, inv_freq, cu);
    else be->rope_backward(x, inv_freq, cu);
    c.result("x", x);
  } else if (op == "attention_forward" || op == "attention_backward") {
    std::vector<int32_t> cu = c.ints("cuSeqlens");
    int64_t T = cu.empty() ? 0 : cu.back(), Hq = c.dim("Hq"), Hkv = c.dim("Hkv"), D = c.dim("D");
    if (Hkv == 0 || Hq % Hkv) c.fail("Hq must be a multiple of Hkv");
    Tensor q = c.in("q", {T, Hq, D}), k = c.in("k", {T, Hkv, D}), v = c.in("v", {T, Hkv, D});
    bool causal = c.flag("causal");
    double scale = c.number("scale");
    AttentionMods mods;
    mods.softcap = c.number_or("softcap", 0);
    mods.window = int64_t(c.number_or("window", 0));
    // relative position bias (T5): relBias [2 * span - 1, Hq]; the backward returns dRelBias
    Tensor rel, drel;
    const int64_t span = c.has("relBias") ? c.dim("span") : 0;
    if (span > 0) {
      rel = c.in("relBias", {2 * span - 1, Hq});
      mods.rel_bias = &rel;
    }
    if (op == "attention_forward") {
      Tensor o = c.out({T, Hq, D}), lse = c.out({T, Hq});
      be->attention_forward(o, lse, q, k, v, cu, causal, scale, mods);
      c.result("out", o);
      c.result("lse", lse);
    } else {
      Tensor dout = c.in("dout", {T, Hq, D}), o = c.in("out", {T, Hq, D}), lse = c.in("lse", {T, Hq});
      Tensor dq = c.out({T, Hq, D}), dk = c.out({T, Hkv, D}), dv = c.out({T, Hkv, D});
      if (span > 0) {
        drel = c.out({2 * span - 1, Hq});
        mods.d_rel_bias = &drel;
      }
      be->attention_backward(dq, dk, dv, dout, q, k, v, o, lse, cu, causal, scale, mods);
      c.result("dq", dq);
      c.result("dk", dk);
      c.result("dv", dv);
      if (span > 0) c.result("dRelBias", drel);
    }
  } else if (op == "swiglu_forward") {
    int64_t n = c.dim("n");
    Tensor g = c.in("gate", {n}), u = c.in("up", {n}), o = c.out({n});
    be->swiglu_forward(o, g, u);
    c.result("out", o);
  } else if (op == "swiglu_backward") {
    int64_t n = c.dim("n");
    Tensor d = c.in("dout", {n}), g = c.in("gate", {n}), u = c.in("up", {n});
    Tensor dg = c.out({n}), du = c.out({n});
    be->swiglu_backward(dg, du, d, g, u);
    c.result("dgate", dg);
    c.result("dup", du);
  } else if (op == "gelu_forward") {
    int64_t n = c.dim("n");
    Tensor x = c.in("x", {n}), o = c.out({n});
    be->gelu_forward(o, x);
    c.result("out", o);
  } else if (op == "gelu_backward") {
    int64_t n = c.dim("n");
    Tensor d = c.in("dout", {n}), x = c.in("x", {n}), dx = c.out({n});
    be->gelu_backward(dx, d, x);
    c.result("dx", dx);
  } else if (op == "activation_forward" || op == "activation_backward" || op == "gated_forward" ||
             op == "gated_backward") {
    const std::string name = c.text("act");
    Activation act = Activation::Silu;
    if (name == "gelu") act = Activation::Gelu;
    else if (name == "gelu_tanh") act = Activation::GeluTanh;
    else if (name == "relu") act = Activation::Relu;
    else if (name != "silu") c.fail("act must be silu, gelu, gelu_tanh or relu");
    int64_t n = c.dim("n");
    if (op == "activation_forward") {
      Tensor x = c.in("x", {n}), o = c.out({n});
      be->activation_forward(o, x, act);
      c.result("out", o);
    } else if (op == "activation_backward") {
      Tensor d = c.in("dout", {n}), x = c.in("x", {n}), dx = c.out({n});
      be->activation_backward(dx, d, x, act);
      c.result("dx", dx);
    } else if (op == "gated_forward") {
      Tensor g = c.in("gate", {n}), u = c.in("up", {n}), o = c.out({n});
      be->gated_forward(o, g, u, act);
      c.result("out", o);
    } else {
      Tensor d = c.in("dout", {n}), g = c.in("gate", {n}), u = c.in("up", {n});
      Tensor dg = c.out({n}), du = c.out({n});
      be->gated_backward(dg, du, d, g, u, act);
      c.result("dgate", dg);
      c.result("dup", du);
    }
  } else if (op == "copy_columns") {
    int64_t R = c.dim("rows"), Cd = c.dim("dstCols"), Cs = c.dim("srcCols");
    Tensor dst = c.in("dst", {R, Cd}), src = c.in("src", {R, Cs});
    be->copy_columns(dst, c.dim("dstCol"), src, c.dim("srcCol"), c.dim("ncols"));
    c.result("dst", dst);
  } else if (op == "logits_block_update") {
    int64_t N = c.dim("N"), Vb = c.dim("Vb");
    std::vector<int32_t> targets = c.ints("targets");
    if (int64_t(targets.size()) != N) c.fail("targets must hold N ids");
    const DType st = be->act_dtype() == DType::F64 ? DType::F64 : DType::F32;
    auto state = [&](const char* name) {
      std::vector<double> v = c.doubles(name);
      if (int64_t(v.size()) != N) c.fail(std::string(name) + " must hold N values");
      Tensor t = be->empty({N}, st);
      be->upload(t, v.data(), DType::F64);
      return t;
    };
    Tensor logits = c.in("logits", {N, Vb}), mx = state("max"), sum = state("sum"), tgt = state("target");
    be->logits_block_update(logits, mx, sum, tgt, targets, c.dim("v0"), c.number_or("softcap", 0));
    c.result("logits", logits);
    c.result("max", mx);
    c.result("sum", sum);
    c.result("target", tgt);
  } else if (op == "dropout_forward" || op == "dropout_backward") {
    int64_t R = c.dim("rows"), C = c.dim("cols");
    std::vector<uint64_t> keys = row_keys(c);
    if (int64_t(keys.size()) != R) c.fail("rowKeys must have one key per row");
    bool fwd = op == "dropout_forward";
    Tensor x = c.in(fwd ? "x" : "dout", {R, C}), o = c.out({R, C});
    uint64_t seed = uint64_t(c.number("seed"));
    if (fwd) be->dropout_forward(o, x, c.number("p"), seed, keys);
    else be->dropout_backward(o, x, c.number("p"), seed, keys);
    c.result(fwd ? "out" : "dx", o);
  } else if (op == "embedding_forward") {
    int64_t V = c.dim("V"), H = c.dim("H");
    std::vector<int32_t> ids = c.ints("ids");
    for (int32_t id : ids) if (id < 0 || id >= V) c.fail("id " + std::to_string(id) + " outside the table");
    bool acc = c.flag("accumulate");
    Tensor table = c.in("table", {V, H});
    Tensor o = acc ? c.in("out", {int64_t(ids.size()), H}) : c.out({int64_t(ids.size()), H});
    be->embedding_forward(o, table, ids, acc);
    c.result("out", o);
  } else if (op == "embedding_backward") {
    int64_t V = c.dim("V"), H = c.dim("H");
    std::vector<int32_t> ids = c.ints("ids");
    for (int32_t id : ids) if (id < 0 || id >= V) c.fail("id " + std::to_string(id) + " outside the table");
    Tensor dt = c.in("dtable", {V, H}), d = c.in("dout", {int64_t(ids.size()), H});
    be->embedding_backward(dt, d, ids);
    c.result("dtable", dt);
  } else if (op == "pool_forward" || op == "pool_backward") {
    std::vector<int32_t> cu = c.ints("cuSeqlens");
    int64_t H = c.dim("H"), T = cu.empty() ? 0 : cu.back(), B = int64_t(cu.size()) - 1;
    Pooling mode = pooling_mode(c);
    if (op == "pool_forward") {
      Tensor h = c.in("h", {T, H}), o = c.out({B, H});
      be->pool_forward(o, h, cu, mode);
      c.result("out", o);
    } else {
      Tensor d = c.in("dout", {B, H}), dh = c.out({T, H});
      be->pool_backward(dh, d, cu, mode);
      c.result("dh", dh);
    }
  } else if (op == "l2normalize_forward") {
    int64_t R = c.dim("rows"), H = c.dim("H");
    Tensor x = c.in("x", {R, H}), y = c.out({R, H});
    be->l2normalize_forward(y, x);
    c.result("y", y);
  } else if (op == "infonce") {
    int64_t B = c.dim("batch"), G = c.dim("group"), H = c.dim("H");
    Tensor q = c.in("q", {B, H}), p = c.in("p", {B * G, H}), dq = c.out({B, H}), dp = c.out({B * G, H});
    LossSpec spec;
    spec.group = G;
    spec.temperature = c.number("temperature");
    spec.cosine = c.flag("cosine");
    if (c.has("inBatch")) spec.in_batch = c.flag("inBatch");
    spec.contrastive_weight = c.number_or("contrastiveWeight", 1);
    if (c.has("distill")) spec.distill = parse_distill(c.text("distill"));
    spec.distill_weight = c.number_or("distillWeight", spec.distill == Distill::None ? 0 : 1);
    spec.teacher_temperature = c.number_or("teacherTemperature", 1);
    spec.student_temperature = c.number_or("studentTemperature", 1);
    if (c.has("teacher")) spec.teacher = c.doubles("teacher");
    LossParts parts = be->infonce_forward_backward(dq, dp, q, p, spec);
    c.result("loss", parts.loss);
    c.result("contrastive", parts.contrastive);
    c.result("distill", parts.distill);
    c.result("dq", dq);
    c.result("dp", dp);
  } else if (op == "sum_squares") {
    c.result("sum", be->sum_squares(c.in("x", {c.dim("n")})));
  } else if (op == "adamw_step" || op == "sgd_step") {
    int64_t n = c.dim("n");
    Tensor param = c.in("param", {n}), grad = c.in("grad", {n});
    if (op == "adamw_step") {
      Tensor m = c.in("m", {n}), v = c.in("v", {n});
      be->adamw_step(param, grad, m, v, c.number("lr"), c.number("beta1"), c.number("beta2"), c.number("eps"),
                     c.number("weightDecay"), c.dim("step"), c.number("gradScale"));
      c.result("m", m);
      c.result("v", v);
    } else {
      be->sgd_step(param, grad, c.number("lr"), c.number("weightDecay"), c.number("gradScale"));
    }
    c.result("param", param);
  } else {
    c.fail("unknown op");
  }
}

Napi::Value RunOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string device = arg_string(info, 0, "device");
  std::string op = arg_string(info, 1, "opName");
  if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "runOp: args must be an object");
  Napi::Object args = info[2].As<Napi::Object>();
  return guard(env, [&]() -> Napi::Value {
    Backend* be = get_backend(device);
    OpCall call(env, be, args, op);
    run(be, op, call);
    return call.results();
  });
}

}  // namespace

void init_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("runOp", Napi::Function::New(env, RunOp));
}

}  // namespace lmdr::napi
