// Exact top-k selection over one tile of scores, merged into the running best list of each
// query (FAISS-style "GEMM tile + k-select": the tile is bounded, the full Q x N score matrix
// never exists). One block per query row:
//  1. append every score >= the row's current k-th best (tau) to a shared candidate list;
//  2. if more than `cap` qualify (early tiles), find the row's exact k-th largest score with a
//     4-pass 8-bit radix select and keep the row's top k (ties: smaller column first);
//  3. sort the candidates (bitonic, shared memory) and merge them with the old best list by
//     rank (each element's new position = own index + number of better elements in the
//     other list), best first, ties by smaller id.
#include "ops.cuh"

namespace lmdr::cuda {

namespace {
constexpr int kBlock = 512;
constexpr int kMaxK = 4096;

__device__ __forceinline__ uint32_t order_key(float f) {  // monotone float -> uint32
  uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// a ranks before b: higher score, then smaller id
__device__ __forceinline__ bool better(float as, int64_t ai, float bs, int64_t bi) {
  return as > bs || (as == bs && ai < bi);
}

// Exclusive prefix sum of `flag` over the block (blockDim.x == kBlock); *total = the sum.
__device__ int block_exclusive_scan(int flag, int* total) {
  __shared__ int warp_sums[kBlock / 32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int incl = flag;
  for (int o = 1; o < 32; o <<= 1) {
    int y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  __syncthreads();  // warp_sums may still be read by the previous call
  if (lane == 31) warp_sums[warp] = incl;
  __syncthreads();
  int before = 0, sum = 0;
  for (int w = 0; w < kBlock / 32; w++) {
    int v = warp_sums[w];
    if (w < warp) before += v;
    sum += v;
  }
  *total = sum;
  return before + incl - flag;
}
}  // namespace

// ---- kernels ----

// grid rows, block kBlock. best_s/best_i [rows, k] (device), scores [rows, ld]
__global__ void __launch_bounds__(kBlock)
topk_merge_kernel(float* best_s, int64_t* best_i, int k, int cap, const float* scores, int cols, int64_t ld,
                  int64_t base_id, int* nan_flag) {
  extern __shared__ unsigned char smem_raw[];
  int64_t* oi = reinterpret_cast<int64_t*>(smem_raw);  // [k]   old ids
  int64_t* ci = oi + k;                                 // [cap] candidate ids
  float* os = reinterpret_cast<float*>(ci + cap);       // [k]   old scores
  float* cs = os + k;                                   // [cap] candidate scores
  __shared__ int count, nan_seen, sel_remaining;
  __shared__ unsigned hist[256];
  __shared__ uint32_t sel_prefix;

  const int tid = threadIdx.x;
  const float* srow = scores + int64_t(blockIdx.x) * ld;
  float* bs = best_s + int64_t(blockIdx.x) * k;
  int64_t* bi = best_i + int64_t(blockIdx.x) * k;
  const float tau = bs[k - 1];  // -inf while the list is not full
  if (tid == 0) count = 0, nan_seen = 0;
  __syncthreads();

  // 1. everything that could enter the list (>= tau: an equal score with a smaller id wins)
  for (int c = tid; c < cols; c += kBlock) {
    float v = srow[c];
    if (v != v) nan_seen = 1;
    else if (v >= tau) {
      int pos = atomicAdd(&count, 1);
      if (pos < cap) cs[pos] = v, ci[pos] = base_id + c;
    }
  }
  __syncthreads();
  if (nan_seen && tid == 0) *nan_flag = 1;
  int n = count;

  // 2. too many: keep only the row's own top k
  if (n > cap) {
    uint32_t prefix = 0, mask = 0;
    int remaining = k;  // rank of the wanted key among keys matching `prefix`
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int i = tid; i < 256; i += kBlock) hist[i] = 0;
      __syncthreads();
      for (int c = tid; c < cols; c += kBlock) {
        float v = srow[c];
        if (v != v) continue;
        uint32_t key = order_key(v);
        if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
      }
      __syncthreads();
      if (tid == 0) {
        int above = 0, d = 255;
        for (; d > 0; d--) {
          if (above + int(hist[d]) >= remaining) break;
          above += int(hist[d]);
        }
        sel_prefix = prefix | (uint32_t(d) << shift);
        sel_remaining = remaining - above;
      }
      __syncthreads();
      prefix = sel_prefix;
      remaining = sel_remaining;
      mask |= 255u << shift;
      __syncthreads();
    }
    // prefix = key of the k-th largest; k - remaining keys are strictly larger
    if (tid == 0) count = 0;
    __syncthreads();
    for (int c = tid; c < cols; c += kBlock) {
      float v = srow[c];
      if (v == v && order_key(v) > prefix) {
        int pos = atomicAdd(&count, 1);
        cs[pos] = v, ci[pos] = base_id + c;
      }
    }
    __syncthreads();
    // ties at the threshold: the smallest columns first, in order
    int filled = count, need = remaining;
    for (int c0 = 0; c0 < cols && need > 0; c0 += kBlock) {
      int c = c0 + tid;
      float v = c < cols ? srow[c] : 0.f;
      int flag = (c < cols && v == v && order_key(v) == prefix) ? 1 : 0;
      int total = 0;
      int at = block_exclusive_scan(flag, &total);
      if (flag && at < need) cs[filled + at] = v, ci[filled + at] = base_id + c;
      int taken = min(total, need);
      filled += taken;
      need -= taken;
    }
    n = k;
    __syncthreads();
  }
  if (n == 0) return;  // nothing beats the current list (uniform across the block)

  // 3. sort candidates best-first (padded to a power of two), then merge by rank
  int P = 1;
  while (P < n) P <<= 1;
  for (int i = tid; i < k; i += kBlock) os[i] = bs[i], oi[i] = bi[i];
  for (int i = n + tid; i < P; i += kBlock) cs[i] = -INFINITY, ci[i] = INT64_MAX;
  __syncthreads();
  for (int size = 2; size <= P; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = tid; t < P / 2; t += kBlock) {
        int lo = 2 * t - (t & (stride - 1)), hi = lo + stride;
        // first half of each bitonic run best-first, second half worst-first
        bool swap = (lo & size) == 0 ? better(cs[hi], ci[hi], cs[lo], ci[lo]) : better(cs[lo], ci[lo], cs[hi], ci[hi]);
        if (swap) {
          float ts = cs[lo]; cs[lo] = cs[hi]; cs[hi] = ts;
          int64_t ti = ci[lo]; ci[lo] = ci[hi]; ci[hi] = ti;
        }
      }
      __syncthreads();
    }
  }
  for (int i = tid; i < k; i += kBlock) {  // old entry i: + candidates ranked before it
    int lo = 0, hi = n;
    while (lo < hi) {
      int mid = (lo + hi) >> 1;
      if (better(cs[mid], ci[mid], os[i], oi[i])) lo = mid + 1; else hi = mid;
    }
    int pos = i + lo;
    if (pos < k) bs[pos] = os[i], bi[pos] = oi[i];
  }
  for (int j = tid; j < n; j += kBlock) {  // candidate j: + old entries ranked before it
    int lo = 0, hi = k;
    while (lo < hi) {
      int mid = (lo + hi) >> 1;
      if (better(os[mid], oi[mid], cs[j], ci[j])) lo = mid + 1; else hi = mid;
    }
    int pos = j + lo;
    if (pos < k) bs[pos] = cs[j], bi[pos] = ci[j];
  }
}

// ---- launchers ----

int64_t topk_max_k() { return kMaxK; }

void topk_merge_tile(float* best_scores, int64_t* best_ids, int64_t k, const float* scores, int64_t rows,
                     int64_t cols, int64_t ld, int64_t base_id, int* nan_flag, cudaStream_t s) {
  if (rows <= 0 || cols <= 0) return;
  int cap = 32;
  while (cap < k) cap <<= 1;  // a power of two >= k: the bitonic sort's size bound
  size_t smem = size_t(k + cap) * (sizeof(int64_t) + sizeof(float));
  // the kernel's static shared memory counts against the 48 KiB default too: opt in well before it
  if (smem > 32 * 1024)
    LMDR_CUDA_CHECK(cudaFuncSetAttribute(topk_merge_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  for (int64_t r0 = 0; r0 < rows; r0 += 65535) {
    int64_t rr = std::min<int64_t>(65535, rows - r0);
    topk_merge_kernel<<<unsigned(rr), kBlock, smem, s>>>(best_scores + r0 * k, best_ids + r0 * k, int(k), cap,
                                                         scores + r0 * ld, int(cols), ld, base_id, nan_flag);
    LMDR_LAUNCH_CHECK("topk_merge_kernel");
  }
}

}  // namespace lmdr::cuda
