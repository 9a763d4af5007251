// The fused retrieval loss's settings and the per-query layout its modes share (REFERENCE.md,
// "LLM-Embedder"). One op, several modes: Backend::infonce_forward_backward takes a LossSpec.
//
// Scores s[b, j] = sim(q_b, p_j) / temperature (sim = cosine or dot), P = B * group passages;
// passages b*G .. b*G+G-1 are query b's group ("allowed" columns: every passage when in_batch,
// else the own group only).
// - Ranks: with distillation on, query b's group is ordered by teacher score, highest first,
//   ties in data order; rank[b*G + i] = the group index of the i-th candidate. Without
//   distillation rank is the identity (the positive, index 0, is the target).
// - contrastive_b = logsumexp_{allowed j} s[b, j] - s[b, b*G + rank[b*G]]
// - w[b, k] = softmax_k(teacher[b, k] / teacher_temperature) over the own group (data order)
// - kl_b = sum_k w[b,k] (log w[b,k] - log softmax_k(s[b, b*G+k] / student_temperature))
// - stable_b = sum_i w[b, rank_i] * (logsumexp_{allowed j, j not in ranks 0..i-1 of b} s[b, j]
//              - s[b, b*G + rank_i])
// loss = contrastive_weight * mean_b contrastive_b + distill_weight * mean_b distill_b.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmdr {

enum class Distill : uint8_t { None, Kl, Stable };

struct LossSpec {
  int64_t group = 1;
  double temperature = 1;  // s = sim / temperature
  bool cosine = true;
  bool in_batch = true;  // softmaxes over every passage of the batch (false: the own group only)
  double contrastive_weight = 1;
  Distill distill = Distill::None;
  double distill_weight = 0;
  double teacher_temperature = 1, student_temperature = 1;
  std::vector<double> teacher;  // [B*G] teacher scores (distill != None)
};

struct LossParts {
  double loss = 0;         // contrastive_weight * contrastive + distill_weight * distill
  double contrastive = 0;  // mean over queries
  double distill = 0;      // mean over queries (0 without distillation)
};

// Host-side layout of the modes: per query, the ranks and the teacher weights.
struct LossLayout {
  std::vector<int32_t> rank;    // [B*G] group index of the i-th candidate (by teacher score)
  std::vector<int32_t> rank_of; // [B*G] inverse: rank of group index k
  std::vector<double> weight;   // [B*G] teacher softmax weights, data order (empty: none)
};

// Checks the spec for B queries (names what is wrong) and builds the layout.
LossLayout loss_layout(const LossSpec& spec, int64_t B);

Distill parse_distill(const std::string& name);  // "none" | "kl" | "stable"

}  // namespace lmdr
