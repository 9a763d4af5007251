#include "core/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace lmdr {
namespace {

// Blocks: 64 MiB of float32 corpus per call on the CPU (the upload is a copy); the CUDA backend
// tiles internally and each call moves the running [Q, k] lists, so it gets ~2 GiB of bf16.
int64_t default_block_rows(const Backend& backend, int64_t H) {
  const bool gpu = backend.name().rfind("cuda", 0) == 0;
  const int64_t bytes = gpu ? (int64_t(2) << 30) : (int64_t(64) << 20);
  const int64_t per_row = H * int64_t(gpu ? 2 : 4);
  return std::max<int64_t>(1, bytes / per_row);
}

// Queries per pass over the corpus: bounds the uploaded queries and the heap working set.
constexpr int64_t kQueryChunk = 16384;

void require_finite(const float* x, int64_t rows, int64_t H, const char* what) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < H; c++)
      if (!std::isfinite(x[r * H + c]))
        throw Error(std::string("topk: ") + what + " row " + std::to_string(r) + ", column " +
                    std::to_string(c) + " is " + (std::isnan(x[r * H + c]) ? "NaN" : "infinite"));
}

}  // namespace

TopkResult exact_topk(Backend& backend, const float* queries, int64_t Q, const float* corpus,
                      int64_t N, int64_t H, int64_t k, int64_t block_rows) {
  if (H <= 0) throw Error("topk: hidden size must be >= 1, got " + std::to_string(H));
  if (Q < 0) throw Error("topk: number of queries must be >= 0, got " + std::to_string(Q));
  if (N <= 0) throw Error("topk: the corpus is empty");
  if (k <= 0) throw Error("topk: k must be >= 1, got " + std::to_string(k));
  if (block_rows < 0) throw Error("topk: block rows must be >= 0, got " + std::to_string(block_rows));
  require_finite(queries, Q, H, "queries");
  require_finite(corpus, N, H, "corpus");
  if (block_rows == 0) block_rows = default_block_rows(backend, H);
  block_rows = std::min(block_rows, N);
  k = std::min(k, N);  // k > N: every row, in order

  std::vector<float> best(size_t(Q * k), -std::numeric_limits<float>::infinity());
  std::vector<int64_t> best_ids(size_t(Q * k), -1);
  Tensor block = backend.empty({block_rows, H});
  for (int64_t q0 = 0; q0 < Q; q0 += kQueryChunk) {
    const int64_t qn = std::min(kQueryChunk, Q - q0);
    Tensor q = backend.empty({qn, H});
    backend.upload(q, queries + q0 * H, DType::F32);
    for (int64_t n0 = 0; n0 < N; n0 += block_rows) {
      const int64_t rows = std::min(block_rows, N - n0);
      Tensor b = block.rows(0, rows);
      backend.upload(b, corpus + n0 * H, DType::F32);
      backend.topk_merge(best.data() + q0 * k, best_ids.data() + q0 * k, k, q, b, n0);
    }
  }
  backend.synchronize();

  TopkResult out;
  out.k = k;
  out.scores = std::move(best);
  out.ids = std::move(best_ids);
  return out;
}

}  // namespace lmdr
