// Exact top-k inner-product search on the CPU: one corpus block at a time, merged into the
// running best lists.
//
// Scores come from the backend's GEMM (matmul.cpp) in [QB x NB] tiles, so the full
// queries x corpus matrix never exists. Each query's running list is kept as a binary heap
// with its worst entry at the root (worst = lowest score, then highest id), so a candidate
// costs one comparison unless it enters the top k. The heap lives in the caller's
// best_scores/best_ids arrays: a list sorted best-first, reversed, is already a valid heap,
// and sorting the heap best-first at the end restores the contract.
#include "cpu/topk.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace lmdr::cpu {
namespace {

constexpr int64_t QB = 512;   // queries per score tile
constexpr int64_t NB = 2048;  // corpus rows per score tile ([QB, NB] floats = 4 MiB)

// a ranks strictly before b: higher score, then smaller id.
inline bool better(float sa, int64_t ia, float sb, int64_t ib) {
  return sa > sb || (sa == sb && ia < ib);
}

// Restore the heap (root = worst) after the root of s/ids[0..k) was replaced.
inline void sift_down(float* s, int64_t* ids, int64_t k) {
  int64_t i = 0;
  const float sv = s[0];
  const int64_t iv = ids[0];
  for (;;) {
    int64_t c = 2 * i + 1;
    if (c >= k) break;
    if (c + 1 < k && better(s[c], ids[c], s[c + 1], ids[c + 1])) c++;  // the worse child
    if (!better(sv, iv, s[c], ids[c])) break;
    s[i] = s[c];
    ids[i] = ids[c];
    i = c;
  }
  s[i] = sv;
  ids[i] = iv;
}

// Best-first list <-> heap. Empty slots (-inf) are ordinary entries every finite score beats.
void list_to_heap(float* s, int64_t* ids, int64_t k) {
  std::reverse(s, s + k);
  std::reverse(ids, ids + k);
}

void heap_to_list(float* s, int64_t* ids, int64_t k, std::vector<int64_t>& order,
                  std::vector<float>& tmp_s, std::vector<int64_t>& tmp_i) {
  order.resize(k);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return better(s[a], ids[a], s[b], ids[b]); });
  tmp_s.resize(k);
  tmp_i.resize(k);
  for (int64_t i = 0; i < k; i++) {
    tmp_s[i] = s[order[i]];
    tmp_i[i] = ids[order[i]];
  }
  std::copy(tmp_s.begin(), tmp_s.end(), s);
  std::copy(tmp_i.begin(), tmp_i.end(), ids);
}

[[noreturn]] void non_finite(int64_t q, int64_t id, double score) {
  throw Error("topk: score of query row " + std::to_string(q) + " against corpus row " +
              std::to_string(id) + " is " + (std::isnan(score) ? "NaN" : "infinite") +
              " (NaN or overflow in the embeddings)");
}

}  // namespace

template <typename T>
void topk_merge(float* best_scores, int64_t* best_ids, int64_t k, const T* queries, int64_t Q,
                const T* corpus, int64_t N, int64_t H, int64_t base_id) {
  if (Q <= 0 || N <= 0 || k <= 0) return;
  const int64_t qb_max = std::min(Q, QB), nb_max = std::min(N, NB);
  std::vector<T> tile(size_t(qb_max * nb_max));  // scores [qb, nb]

  for (int64_t q0 = 0; q0 < Q; q0 += QB) {
    const int64_t qb = std::min(QB, Q - q0);
    parallel_for(qb, 64, [&](int64_t a, int64_t b) {
      for (int64_t q = q0 + a; q < q0 + b; q++) list_to_heap(best_scores + q * k, best_ids + q * k, k);
    });
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      const int64_t nb = std::min(NB, N - n0);
      // tile[qb, nb] = queries[q0:q0+qb] @ corpus[n0:n0+nb]^T
      matmul<T>(tile.data(), queries + q0 * H, corpus + n0 * H, qb, nb, H, false, true, T(1), T(0));
      parallel_for(qb, 16, [&](int64_t a, int64_t b) {
        for (int64_t qi = a; qi < b; qi++) {
          const int64_t q = q0 + qi;
          float* s = best_scores + q * k;
          int64_t* ids = best_ids + q * k;
          const T* row = tile.data() + qi * nb;
          for (int64_t j = 0; j < nb; j++) {
            const float v = float(row[j]);
            if (!std::isfinite(v)) non_finite(q, base_id + n0 + j, double(row[j]));
            const int64_t id = base_id + n0 + j;
            if (better(v, id, s[0], ids[0])) {
              s[0] = v;
              ids[0] = id;
              sift_down(s, ids, k);
            }
          }
        }
      });
    }
    parallel_for(qb, 16, [&](int64_t a, int64_t b) {
      std::vector<int64_t> order;
      std::vector<float> tmp_s;
      std::vector<int64_t> tmp_i;
      for (int64_t q = q0 + a; q < q0 + b; q++)
        heap_to_list(best_scores + q * k, best_ids + q * k, k, order, tmp_s, tmp_i);
    });
  }
}

template void topk_merge<float>(float*, int64_t*, int64_t, const float*, int64_t, const float*,
                                int64_t, int64_t, int64_t);
template void topk_merge<double>(float*, int64_t*, int64_t, const double*, int64_t,
                                 const double*, int64_t, int64_t, int64_t);

}  // namespace lmdr::cpu
