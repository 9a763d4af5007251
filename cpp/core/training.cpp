// Training state: which parameters train, their gradients, the optimiser step and its
// moments (checkpointable), and host access to parameters and merged base weights.
#include <cmath>

#include "core/model.h"

namespace lmdr {

static NamedHost to_host(Backend& be, const std::string& name, const Tensor& t) {
  NamedHost h;
  h.name = name;
  h.shape = t.shape;
  h.data.resize(size_t(t.numel()));
  be.download(h.data.data(), DType::F32, t);
  return h;
}

void Model::allocate_training_state(Param& p) {
  const DType pd = be_->param_dtype();
  if (p.value.dtype != pd && !p.master.defined()) {
    p.master = be_->empty(p.value.shape, pd);
    be_->convert(p.master, p.value);
  }
  if (!p.grad.defined()) p.grad = be_->zeros(p.value.shape, pd);
}

void Model::set_trainable(TrainMode mode) {
  if (mode == TrainMode::Lora && !has_lora_) throw Error("setTrainable('lora'): call addLora first");
  if (mode == TrainMode::Full && has_lora_)
    throw Error("setTrainable('full'): this model has LoRA adapters; full fine-tuning trains the base weights without LoRA");
  if (mode == mode_) return;
  mode_ = mode;
  optimizer_steps_ = 0;
  for (auto& p : params_) {
    p->trainable = mode == TrainMode::Full ? !p->lora : mode == TrainMode::Lora ? p->lora : false;
    p->exp_avg = p->exp_avg_sq = Tensor();  // a new set of trainable params starts a new optimiser
    if (p->trainable) {
      allocate_training_state(*p);
    } else {
      p->grad = p->master = Tensor();
    }
  }
}

std::vector<Param*> Model::trainable_params() {
  std::vector<Param*> out;
  for (auto& p : params_)
    if (p->trainable) out.push_back(p.get());
  return out;
}

std::vector<NamedHost> Model::params() {
  std::vector<NamedHost> out;
  for (Param* p : trainable_params()) out.push_back(to_host(*be_, p->name, p->updated()));
  return out;
}

void Model::set_param(const std::string& name, const std::vector<double>& data) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error("setParam: no parameter named '" + name + "'");
  Param& p = *it->second;
  if (int64_t(data.size()) != p.value.numel())
    throw Error("setParam: '" + name + "' has shape " + p.value.shape_str() + " (" + std::to_string(p.value.numel()) +
                " values), got " + std::to_string(data.size()) + " values");
  be_->upload(p.value, data.data(), DType::F64);
  if (p.master.defined()) be_->upload(p.master, data.data(), DType::F64);
}

std::vector<NamedHost> Model::grads() {
  std::vector<NamedHost> out;
  for (Param* p : trainable_params()) out.push_back(to_host(*be_, p->name, p->grad));
  return out;
}

void Model::zero_grad() {
  for (Param* p : trainable_params()) be_->fill(p->grad, 0.0);
}

double Model::grad_sum_squares() {
  double total = 0;
  for (Param* p : trainable_params()) total += be_->sum_squares(p->grad);
  return total;
}

void Model::optimizer_step(const OptimizerStep& s) {
  auto trainable = trainable_params();
  if (trainable.empty()) throw Error("optimizerStep: nothing trains (call setTrainable('lora' or 'full') first)");
  if (s.step < 1) throw Error("optimizerStep: step must be >= 1 (1-based), got " + std::to_string(s.step));
  for (Param* p : trainable) {
    if (s.kind == OptimizerStep::Kind::AdamW) {
      if (!p->exp_avg.defined()) {  // moments are allocated on the first step
        p->exp_avg = be_->zeros(p->grad.shape, p->grad.dtype);
        p->exp_avg_sq = be_->zeros(p->grad.shape, p->grad.dtype);
      }
      be_->adamw_step(p->updated(), p->grad, p->exp_avg, p->exp_avg_sq, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay,
                      s.step, s.grad_scale);
    } else {
      be_->sgd_step(p->updated(), p->grad, s.lr, s.weight_decay, s.grad_scale);
    }
    if (p->master.defined()) be_->convert(p->value, p->master);
  }
  optimizer_steps_ = s.step;
}

std::vector<NamedHost> Model::optimizer_state() {
  std::vector<NamedHost> out;
  for (Param* p : trainable_params()) {
    if (!p->exp_avg.defined()) continue;
    out.push_back(to_host(*be_, p->name + ".exp_avg", p->exp_avg));
    out.push_back(to_host(*be_, p->name + ".exp_avg_sq", p->exp_avg_sq));
  }
  out.push_back(NamedHost{"step", {1}, {float(optimizer_steps_)}});
  return out;
}

void Model::set_optimizer_state(const std::vector<NamedHost>& tensors) {
  auto strip = [](const std::string& name, const std::string& suffix, std::string& base) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
    base = name.substr(0, name.size() - suffix.size());
    return true;
  };
  for (const auto& t : tensors) {
    if (t.name == "step") {
      if (t.data.size() != 1 || !(t.data[0] >= 0) || t.data[0] != std::floor(t.data[0]))
        throw Error("setOptimizerState: 'step' must hold one non-negative integer");
      optimizer_steps_ = int64_t(t.data[0]);
      continue;
    }
    std::string base;
    const bool first = strip(t.name, ".exp_avg", base);
    if (!first && !strip(t.name, ".exp_avg_sq", base))
      throw Error("setOptimizerState: unexpected tensor '" + t.name + "' (expected <param>.exp_avg, <param>.exp_avg_sq or step)");
    auto it = by_name_.find(base);
    if (it == by_name_.end() || !it->second->trainable)
      throw Error("setOptimizerState: '" + t.name + "' names no trainable parameter");
    Param& p = *it->second;
    if (int64_t(t.data.size()) != p.grad.numel())
      throw Error("setOptimizerState: '" + t.name + "' holds " + std::to_string(t.data.size()) + " values, expected " +
                  p.grad.shape_str());
    if (!p.exp_avg.defined()) {
      p.exp_avg = be_->zeros(p.grad.shape, p.grad.dtype);
      p.exp_avg_sq = be_->zeros(p.grad.shape, p.grad.dtype);
    }
    be_->upload(first ? p.exp_avg : p.exp_avg_sq, t.data.data(), DType::F32);
  }
}

std::vector<float> Model::base_weight(const std::string& name, bool merged) {
  auto it = by_name_.find(name);
  if (it == by_name_.end() || it->second->lora) throw Error("baseWeight: no base weight named '" + name + "'");
  Param& p = *it->second;
  std::vector<float> out(size_t(p.value.numel()));
  const Tensor& src = p.master.defined() ? p.master : p.value;
  if (!merged) {
    be_->download(out.data(), DType::F32, src);
    return out;
  }
  const Linear* lin = nullptr;
  for (const auto& l : linears_)
    if (l->weight == &p) lin = l.get();
  if (!lin || !lin->lora) {
    be_->download(out.data(), DType::F32, src);
    return out;
  }
  // W + scale * B A in F64 on the host (PEFT's merge).
  const LoraAdapter& a = *lin->lora;
  std::vector<double> w(out.size()), A(size_t(a.A->value.numel())), B(size_t(a.B->value.numel()));
  be_->download(w.data(), DType::F64, src);
  be_->download(A.data(), DType::F64, a.A->updated());
  be_->download(B.data(), DType::F64, a.B->updated());
  const int64_t r = a.r, in = lin->in;
  for (int64_t o = 0; o < lin->out; o++)
    for (int64_t k = 0; k < r; k++) {
      const double bk = B[size_t(o * r + k)] * a.scale;
      if (bk == 0) continue;
      for (int64_t i = 0; i < in; i++) w[size_t(o * in + i)] += bk * A[size_t(k * in + i)];
    }
  for (size_t i = 0; i < out.size(); i++) out[i] = float(w[i]);
  return out;
}

}  // namespace lmdr
