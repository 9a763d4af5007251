// The retrieval loss's per-query layout: teacher ranks (stable sort, highest first) and weights.
#include "core/retrieval_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/tensor.h"

namespace lmdr {

Distill parse_distill(const std::string& name) {
  if (name == "none") return Distill::None;
  if (name == "kl") return Distill::Kl;
  if (name == "stable") return Distill::Stable;
  throw Error("loss: distill must be none, kl or stable, got \"" + name + "\"");
}

LossLayout loss_layout(const LossSpec& spec, int64_t B) {
  const int64_t G = spec.group;
  auto positive = [](double v) { return v > 0 && std::isfinite(v); };
  if (G < 1) throw Error("loss: group must be >= 1, got " + std::to_string(G));
  if (!positive(spec.temperature)) throw Error("loss: temperature must be > 0, got " + std::to_string(spec.temperature));
  if (!(spec.contrastive_weight >= 0) || !std::isfinite(spec.contrastive_weight) || !(spec.distill_weight >= 0) ||
      !std::isfinite(spec.distill_weight))
    throw Error("loss: contrastive and distill weights must be finite and >= 0");
  LossLayout out;
  out.rank.resize(B * G);
  out.rank_of.resize(B * G);
  for (int64_t b = 0; b < B; b++)
    for (int64_t k = 0; k < G; k++) out.rank[b * G + k] = out.rank_of[b * G + k] = int32_t(k);
  if (spec.distill == Distill::None) return out;
  if (!positive(spec.teacher_temperature) || !positive(spec.student_temperature))
    throw Error("loss: teacher and student temperatures must be > 0");
  if (int64_t(spec.teacher.size()) != B * G)
    throw Error("loss: " + std::to_string(spec.teacher.size()) + " teacher scores, expected batch*group = " +
                std::to_string(B * G));
  for (size_t i = 0; i < spec.teacher.size(); i++)
    if (!std::isfinite(spec.teacher[i]))
      throw Error("loss: teacher score " + std::to_string(i) + " is not finite (" + std::to_string(spec.teacher[i]) + ")");
  out.weight.resize(B * G);
  for (int64_t b = 0; b < B; b++) {
    const double* t = spec.teacher.data() + b * G;
    int32_t* r = out.rank.data() + b * G;
    std::stable_sort(r, r + G, [&](int32_t x, int32_t y) { return t[x] > t[y]; });
    for (int64_t i = 0; i < G; i++) out.rank_of[b * G + r[i]] = int32_t(i);
    double mx = -INFINITY, sum = 0;
    for (int64_t k = 0; k < G; k++) mx = std::max(mx, t[k] / spec.teacher_temperature);
    for (int64_t k = 0; k < G; k++) sum += std::exp(t[k] / spec.teacher_temperature - mx);
    for (int64_t k = 0; k < G; k++) out.weight[b * G + k] = std::exp(t[k] / spec.teacher_temperature - mx) / sum;
  }
  return out;
}

}  // namespace lmdr
