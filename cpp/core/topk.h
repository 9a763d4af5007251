// Exact top-k inner-product search, backend-neutral: the corpus streams through
// Backend::topk_merge one block at a time, so memory is one corpus block on the backend plus
// the running [Q, k] results, whatever the corpus size; the [Q, N] score matrix never exists.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"

namespace lmdr {

struct TopkResult {
  int64_t k = 0;               // columns returned: min(k asked, corpus rows)
  std::vector<float> scores;   // [Q, k], each row by score descending, ties by smaller id
  std::vector<int64_t> ids;    // [Q, k], corpus row indices
};

// queries[Q, H] and corpus[N, H] are host float32. block_rows = corpus rows per
// Backend::topk_merge call (0 = a size suited to the backend). k larger than N returns all N.
// Non-finite inputs are rejected by row; a non-finite score (overflow) by the backend.
TopkResult exact_topk(Backend& backend, const float* queries, int64_t Q, const float* corpus,
                      int64_t N, int64_t H, int64_t k, int64_t block_rows = 0);

}  // namespace lmdr
