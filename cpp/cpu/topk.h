#pragma once
#include <cstdint>

namespace lmdr::cpu {
// Merge the top-k inner products of queries[Q,H] against corpus[N,H] (ids base_id + row) into
// best_scores/best_ids [Q,k] (sorted desc, ties by smaller id, -inf = empty). See Backend::topk_merge.
template <typename T>
void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const T* queries, int64_t Q,
                const T* corpus, int64_t N, int64_t H, int64_t base_id);
}  // namespace lmdr::cpu
