// Attaching PEFT LoRA adapters: target matching like PEFT's target_modules, A initialised
// Kaiming-uniform (a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) from a seeded generator, B = 0.
#include <cmath>
#include <set>

#include "core/model.h"

namespace lmdr {

namespace {

// PEFT: a module is targeted when its name equals the target or ends with "." + target.
bool matches(const std::string& module, const std::string& target) {
  if (module == target) return true;
  return module.size() > target.size() && module.compare(module.size() - target.size(), target.size(), target) == 0 &&
         module[module.size() - target.size() - 1] == '.';
}

// The module path without its layer prefix ("layers.3.", "encoder.layer.3."): what users target.
std::string short_name(const std::string& module) {
  for (const std::string prefix : {"layers.", "encoder.layer."}) {
    if (module.rfind(prefix, 0) != 0) continue;
    size_t dot = module.find('.', prefix.size());
    if (dot != std::string::npos) return module.substr(dot + 1);
  }
  return module;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// splitmix64 stream: uniform doubles in [0, 1), the same on every platform for a seed.
class Uniform {
 public:
  explicit Uniform(uint64_t seed) : state_(seed) {}
  double next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

}  // namespace

void Model::add_lora(const LoraSpec& spec) {
  if (has_lora_) throw Error("addLora: this model already has LoRA adapters");
  if (mode_ == TrainMode::Full) throw Error("addLora: the model is set up for full fine-tuning (setTrainable('full'))");
  if (spec.targets.empty()) throw Error("addLora: targets is empty");
  if (spec.r <= 0) throw Error("addLora: r must be a positive integer, got " + std::to_string(spec.r));
  if (!(spec.alpha > 0)) throw Error("addLora: alpha must be positive");
  if (!(spec.dropout >= 0 && spec.dropout < 1)) throw Error("addLora: dropout must be in [0, 1)");
  for (const auto& target : spec.targets) {
    bool found = false;
    for (const auto& l : linears_) found = found || matches(l->module, target);
    if (found) continue;
    std::set<std::string> names;
    std::string list;
    for (const auto& l : linears_)
      if (names.insert(short_name(l->module)).second) list += (list.empty() ? "" : ", ") + short_name(l->module);
    throw Error("addLora: target '" + target + "' matches no module of this model; valid module names: " + list +
                " (or any full path such as " + linears_.front()->module + ")");
  }
  Uniform rng(spec.seed);
  for (auto& l : linears_) {
    bool targeted = false;
    for (const auto& target : spec.targets) targeted = targeted || matches(l->module, target);
    if (!targeted) continue;
    auto lora = std::make_unique<LoraAdapter>();
    lora->r = spec.r;
    lora->scale = spec.alpha / double(spec.r);
    lora->dropout = spec.dropout;
    lora->salt = fnv1a(l->module);
    lora->A = add_param(l->module + ".lora_A.weight", {spec.r, l->in});
    lora->B = add_param(l->module + ".lora_B.weight", {l->out, spec.r});
    lora->A->lora = lora->B->lora = true;
    const double bound = 1.0 / std::sqrt(double(l->in));
    std::vector<double> a(size_t(spec.r * l->in));
    for (double& x : a) x = (2 * rng.next() - 1) * bound;
    be_->upload(lora->A->value, a.data(), DType::F64);
    be_->fill(lora->B->value, 0.0);
    l->lora = std::move(lora);
  }
  has_lora_ = true;
}

}  // namespace lmdr
