// PLACEHOLDER (naive), replaced by the search work: blocked, multithreaded k-selection.
#include "cpu/topk.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace lmdr::cpu {
template <typename T>
void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const T* queries, int64_t Q,
                const T* corpus, int64_t N, int64_t H, int64_t base_id) {
  for (int64_t q = 0; q < Q; q++) {
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t i = 0; i < k; i++) all.push_back({best_scores[q * k + i], best_ids[q * k + i]});
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t h = 0; h < H; h++) s += double(queries[q * H + h]) * double(corpus[n * H + h]);
      all.push_back({float(s), base_id + n});
    }
    std::stable_sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int64_t i = 0; i < k; i++) { best_scores[q * k + i] = all[i].first; best_ids[q * k + i] = all[i].second; }
  }
}
template void topk_merge<float>(float*, int64_t*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, int64_t);
template void topk_merge<double>(float*, int64_t*, int64_t, const double*, int64_t, const double*, int64_t, int64_t, int64_t);
}  // namespace lmdr::cpu
