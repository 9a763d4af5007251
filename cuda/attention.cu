// Flash-style attention over packed variable-length sequences (cu_seqlens), causal or
// bidirectional, with GQA. Online softmax in fp32 (base-2 exponentials, scores pre-scaled by
// scale*log2(e)); the L x L score matrix is never stored: only a 32-key tile lives in shared
// memory at a time. The backward recomputes probabilities from the saved log-sum-exp (FA2):
//   delta_i = sum_d dO_i * O_i,  P_ij = exp(s_ij - lse_i),  dS_ij = P_ij (dO_i . V_j - delta_i)
//   dV_j = sum_i P_ij dO_i,  dK_j = scale sum_i dS_ij Q_i,  dQ_i = scale sum_j dS_ij K_j
// Two kernels (one owning key tiles for dK/dV, one owning query tiles for dQ), so no atomics.
//
// Work split (SIMT): a block is 8 warps x 4 rows = 32 rows; in the score step each lane owns
// one key (or query) of the 32-wide tile, in the accumulation step each lane owns the head
// dims lane, lane+32, ... (NPER = ceil(D/32) of them). Shared tiles read along d are padded
// to D+1 floats per row so that 32 lanes reading 32 different rows hit 32 different banks.
#include "mma.cuh"
#include "ops.cuh"

namespace lmdr::cuda {

namespace {
constexpr int kWarps = 8, kRowsPerWarp = 4, kTile = 32;  // kWarps * kRowsPerWarp == kTile
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;
}  // namespace

// ---- kernels ----

// Gemma 2's soft-capping and sliding windows and T5's relative position bias (backend.h
// AttentionMods) on the SIMT kernels; the tensor-core forward runs only without them. Scores
// here are in log2 units (s * log2 e), so the cap c becomes c * log2 e: c tanh(s / c) scales
// the same way, and the bias is multiplied by log2 e as it is added.
struct Mods {
  float cap_log2;  // 0 = no soft-capping
  int window;      // 0 = no sliding window
  // T5's relative position bias (ops.cuh AttnRelBias): rel[(j - i + span - 1) * heads + h]
  const float* rel = nullptr;
  float* drel = nullptr;  // backward: += dL/d(score), atomically
  int span = 0, heads = 0;
};

// the relative position bias of score (qi, kj) of head h in log2 units; 0 without one
__device__ __forceinline__ float rel_bias_log2(const Mods& m, int qi, int kj, int h) {
  return m.rel ? m.rel[int64_t(kj - qi + m.span - 1) * m.heads + h] * kLog2e : 0.f;
}

__device__ __forceinline__ bool visible(int qi, int kj, bool causal, const Mods& m) {
  return (!causal || kj <= qi) && (m.window <= 0 || qi - kj < m.window);
}

// the capped score; *dcap = its derivative 1 - tanh^2 (1 without a cap)
__device__ __forceinline__ float cap_score(float s, const Mods& m, float* dcap) {
  if (m.cap_log2 <= 0.f) {
    *dcap = 1.f;
    return s;
  }
  float t = tanhf(s / m.cap_log2);
  *dcap = 1.f - t * t;
  return m.cap_log2 * t;
}

// grid (ceil(max_len/32), Hq, B), block 256. out[T,Hq,D], lse[T,Hq]
template <typename T, int NPER>
__global__ void __launch_bounds__(kWarps * 32)
attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* cu_seqlens, int Hq,
                         int Hkv, int D, bool causal, float scale_log2, Mods mods) {
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
  const int start = cu_seqlens[b], L = cu_seqlens[b + 1] - start;
  const int q0 = blockIdx.x * kTile;
  if (q0 >= L) return;
  extern __shared__ float smem[];
  float* sQ = smem;                  // [32][D]    q * scale * log2(e)
  float* sK = sQ + kTile * D;        // [32][D+1]
  float* sV = sK + kTile * (D + 1);  // [32][D]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    int r = idx / D, d = idx - r * D, qi = q0 + r;
    sQ[idx] = qi < L ? to_f(q[(int64_t(start + qi) * Hq + h) * D + d]) * scale_log2 : 0.f;
  }
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][NPER];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < NPER; i++) acc[r][i] = 0.f;
  }
  const int row0 = warp * kRowsPerWarp;  // this warp's first row within the tile
  const int kv_end = causal ? min(q0 + kTile, L) : L;
  for (int k0 = 0; k0 < kv_end; k0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and sQ is complete on the first pass)
    for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
      int j = idx / D, d = idx - j * D, kj = k0 + j;
      int64_t src = (int64_t(start + kj) * Hkv + hk) * D + d;
      sK[j * (D + 1) + d] = kj < L ? to_f(k[src]) : 0.f;
      sV[j * D + d] = kj < L ? to_f(v[src]) : 0.f;
    }
    __syncthreads();
    // scores: lane = key
    float s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) s[r] = 0.f;
    const float* krow = sK + lane * (D + 1);
    for (int d = 0; d < D; d++) {
      float kd = krow[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) s[r] += sQ[(row0 + r) * D + d] * kd;
    }
    const int kj = k0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      int qi = q0 + row0 + r;
      bool valid = kj < L && qi < L && visible(qi, kj, causal, mods);
      float dcap;
      float sv = valid ? cap_score(s[r] + rel_bias_log2(mods, qi, kj, h), mods, &dcap) : -INFINITY;
      float m_new = fmaxf(m[r], warp_max(sv));
      if (m_new == -INFINITY) {  // nothing visible yet for this row
        s[r] = 0.f;
        continue;
      }
      float p = exp2f(sv - m_new);
      float corr = exp2f(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(p);
#pragma unroll
      for (int i = 0; i < NPER; i++) acc[r][i] *= corr;
      m[r] = m_new;
      s[r] = p;
    }
    // acc += P V: lane = head dims
    for (int j = 0; j < kTile; j++) {
      float vj[NPER];
#pragma unroll
      for (int i = 0; i < NPER; i++) {
        int d = lane + 32 * i;
        vj[i] = d < D ? sV[j * D + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        float pj = __shfl_sync(kFull, s[r], j);
#pragma unroll
        for (int i = 0; i < NPER; i++) acc[r][i] += pj * vj[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    int qi = q0 + row0 + r;
    if (qi >= L) continue;
    int64_t row = int64_t(start + qi) * Hq + h;
    float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
    for (int i = 0; i < NPER; i++) {
      int d = lane + 32 * i;
      if (d < D) out[row * D + d] = from_f<T>(acc[r][i] * inv);
    }
    if (lane == 0) lse[row] = l[r] > 0.f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
  }
}

// Tensor-core forward for bf16 and head dims that are multiples of 16 (<= 128), FlashAttention-2
// style with every intermediate in registers (cuda/mma.cuh gives the fragment layouts):
// grid (ceil(max_len/64), Hq, B), block 4 warps; warp w owns query rows 16w..16w+15 of the
// block's 64. Per 64-key tile: S = Q K^T (8 n-tiles of 8 keys x D/16 k-steps), the online
// softmax on the S accumulators (a row's 64 values sit in the 4 lanes of a quad), P re-packed
// as bf16 A fragments in place, O += P V (D/8 n-tiles x 4 k-steps). K is kept [key][d] and V
// transposed [d][key] in shared memory, rows padded by 8 bf16 so the fragment loads of the 8
// row groups fall in different banks.
namespace tc {
constexpr int kWarps = 4, kRows = 64, kKeys = 64, kPad = 8;
constexpr size_t smem_bytes(int D) {
  return (size_t(kRows + kKeys) * (D + kPad) + size_t(D) * (kKeys + kPad)) * 2;  // Q, K, V^T (bf16)
}
}  // namespace tc

template <int D>
__global__ void __launch_bounds__(tc::kWarps * 32)
attention_forward_tc_kernel(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, const int32_t* cu_seqlens, int Hq, int Hkv, bool causal,
                            float scale_log2) {
  using bf16 = __nv_bfloat16;
  constexpr int LD = D + tc::kPad, LDV = tc::kKeys + tc::kPad, KB = D / 16, DN = D / 8, NT = tc::kKeys / 8;
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
  const int start = cu_seqlens[b], L = cu_seqlens[b + 1] - start;
  const int q0 = blockIdx.x * tc::kRows;
  if (q0 >= L) return;
  extern __shared__ unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [64][LD]
  bf16* sK = sQ + tc::kRows * LD;                // [64][LD]
  bf16* sVt = sK + tc::kKeys * LD;               // [D][LDV]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  constexpr int kVec = 8;  // bf16 per 16-byte load
  for (int idx = threadIdx.x; idx < tc::kRows * (D / kVec); idx += blockDim.x) {
    int r = idx / (D / kVec), c = (idx - r * (D / kVec)) * kVec, qi = q0 + r;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (qi < L) val = *reinterpret_cast<const uint4*>(q + (int64_t(start + qi) * Hq + h) * D + c);
    *reinterpret_cast<uint4*>(sQ + r * LD + c) = val;
  }
  __syncthreads();
  uint32_t qa[KB][4];  // this warp's 16 query rows as A fragments
  {
    const bf16* Qw = sQ + warp * 16 * LD;
#pragma unroll
    for (int kb = 0; kb < KB; kb++) {
      qa[kb][0] = *reinterpret_cast<const uint32_t*>(Qw + g * LD + kb * 16 + 2 * t);
      qa[kb][1] = *reinterpret_cast<const uint32_t*>(Qw + (g + 8) * LD + kb * 16 + 2 * t);
      qa[kb][2] = *reinterpret_cast<const uint32_t*>(Qw + g * LD + kb * 16 + 2 * t + 8);
      qa[kb][3] = *reinterpret_cast<const uint32_t*>(Qw + (g + 8) * LD + kb * 16 + 2 * t + 8);
    }
  }
  float o[DN][4];
#pragma unroll
  for (int dn = 0; dn < DN; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8 (log2 units)
  const int row_lo = q0 + warp * 16 + g, rows[2] = {row_lo, row_lo + 8};
  const int kv_end = causal ? min(q0 + tc::kRows, L) : L;
  for (int k0 = 0; k0 < kv_end; k0 += tc::kKeys) {
    __syncthreads();  // the previous tile's K and V are consumed
    for (int idx = threadIdx.x; idx < tc::kKeys * (D / kVec); idx += blockDim.x) {
      int j = idx / (D / kVec), c = (idx - j * (D / kVec)) * kVec, kj = k0 + j;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
      if (kj < L) {
        int64_t src = (int64_t(start + kj) * Hkv + hk) * D + c;
        kv = *reinterpret_cast<const uint4*>(k + src);
        vv = *reinterpret_cast<const uint4*>(v + src);
      }
      *reinterpret_cast<uint4*>(sK + j * LD + c) = kv;
      const bf16* ve = reinterpret_cast<const bf16*>(&vv);
#pragma unroll
      for (int e = 0; e < kVec; e++) sVt[(c + e) * LDV + j] = ve[e];
    }
    __syncthreads();
    float s[NT][4];  // S for keys k0 + 8n + 2t + (j & 1), rows g (j < 2) and g + 8 (j >= 2)
#pragma unroll
    for (int n = 0; n < NT; n++) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      const bf16* Kn = sK + (n * 8 + g) * LD + 2 * t;
#pragma unroll
      for (int kb = 0; kb < KB; kb++)
        mma_bf16_16816(s[n], qa[kb], *reinterpret_cast<const uint32_t*>(Kn + kb * 16),
                       *reinterpret_cast<const uint32_t*>(Kn + kb * 16 + 8));
    }
    // masks, then the online softmax per row (the quad's 4 lanes hold the row's 64 keys)
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const int qi = rows[j >> 1], kj = k0 + n * 8 + 2 * t + (j & 1);
        const bool ok = qi < L && kj < L && (!causal || kj <= qi);
        s[n][j] = ok ? s[n][j] * scale_log2 : -INFINITY;
        mx[j >> 1] = fmaxf(mx[j >> 1], s[n][j]);
      }
    float base[2], corr[2], sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -INFINITY ? 0.f : m_new;  // nothing visible yet: every p is 0
      corr[r] = exp2f(m[r] - base[r]);
      m[r] = m_new;
    }
    uint32_t pa[NT / 2][4];  // P as A fragments: keys 16kk .. 16kk+15
#pragma unroll
    for (int n = 0; n < NT; n++) {
      const float p0 = exp2f(s[n][0] - base[0]), p1 = exp2f(s[n][1] - base[0]);
      const float p2 = exp2f(s[n][2] - base[1]), p3 = exp2f(s[n][3] - base[1]);
      sum[0] += p0 + p1;
      sum[1] += p2 + p3;
      pa[n >> 1][(n & 1) * 2] = pack_bf16x2(p0, p1);
      pa[n >> 1][(n & 1) * 2 + 1] = pack_bf16x2(p2, p3);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
      l[r] = l[r] * corr[r] + sum[r];
    }
#pragma unroll
    for (int dn = 0; dn < DN; dn++) {
      o[dn][0] *= corr[0], o[dn][1] *= corr[0], o[dn][2] *= corr[1], o[dn][3] *= corr[1];
      const bf16* Vn = sVt + (dn * 8 + g) * LDV + 2 * t;
#pragma unroll
      for (int kk = 0; kk < NT / 2; kk++)
        mma_bf16_16816(o[dn], pa[kk], *reinterpret_cast<const uint32_t*>(Vn + kk * 16),
                       *reinterpret_cast<const uint32_t*>(Vn + kk * 16 + 8));
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int qi = rows[r];
    if (qi >= L) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    const int64_t dst = int64_t(start + qi) * Hq + h;
#pragma unroll
    for (int dn = 0; dn < DN; dn++)
      *reinterpret_cast<uint32_t*>(out + dst * D + dn * 8 + 2 * t) = pack_bf16x2(o[dn][2 * r] * inv, o[dn][2 * r + 1] * inv);
    if (t == 0) lse[dst] = l[r] > 0.f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
  }
}

// delta[t,h] = sum_d dout * out; one warp per (t, h)
template <typename T>
__global__ void attention_delta_kernel(float* delta, const T* dout, const T* out, int64_t rows, int D) {
  int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s += to_f(dout[row * D + d]) * to_f(out[row * D + d]);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

// grid (ceil(max_len/32), Hkv, B), block 256: this block owns 32 keys of kv head hk and sums
// over every query (all Hq/Hkv query heads of the group) that can see them.
template <typename T, int NPER>
__global__ void __launch_bounds__(kWarps * 32)
attention_backward_dkdv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const float* lse,
                               const float* delta, const int32_t* cu_seqlens, int Hq, int Hkv, int D, bool causal,
                               float scale_log2, Mods mods) {
  const int b = blockIdx.z, hk = blockIdx.y, group = Hq / Hkv;
  const int start = cu_seqlens[b], L = cu_seqlens[b + 1] - start;
  const int k0 = blockIdx.x * kTile;
  if (k0 >= L) return;
  extern __shared__ float smem[];
  float* sK = smem;                   // [32][D]
  float* sV = sK + kTile * D;         // [32][D]
  float* sQ = sV + kTile * D;         // [32][D+1]  q * scale * log2(e)
  float* sO = sQ + kTile * (D + 1);   // [32][D+1]  dout
  float* sL = sO + kTile * (D + 1);   // [32]       lse * log2(e)
  float* sD = sL + kTile;             // [32]       delta
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = warp * kRowsPerWarp;

  for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    int j = idx / D, d = idx - j * D, kj = k0 + j;
    int64_t src = (int64_t(start + kj) * Hkv + hk) * D + d;
    sK[idx] = kj < L ? to_f(k[src]) : 0.f;
    sV[idx] = kj < L ? to_f(v[src]) : 0.f;
  }
  float dK[kRowsPerWarp][NPER], dV[kRowsPerWarp][NPER];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++)
#pragma unroll
    for (int i = 0; i < NPER; i++) dK[r][i] = dV[r][i] = 0.f;

  const int q_begin = causal ? k0 : 0;  // earlier queries cannot see these keys
  for (int g = 0; g < group; g++) {
    const int h = hk * group + g;
    for (int q0 = q_begin - q_begin % kTile; q0 < L; q0 += kTile) {
      __syncthreads();
      for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
        int i = idx / D, d = idx - i * D, qi = q0 + i;
        int64_t src = (int64_t(start + qi) * Hq + h) * D + d;
        sQ[i * (D + 1) + d] = qi < L ? to_f(q[src]) * scale_log2 : 0.f;
        sO[i * (D + 1) + d] = qi < L ? to_f(dout[src]) : 0.f;
      }
      if (threadIdx.x < kTile) {
        int qi = q0 + threadIdx.x;
        int64_t row = int64_t(start + qi) * Hq + h;
        sL[threadIdx.x] = qi < L ? lse[row] * kLog2e : 0.f;
        sD[threadIdx.x] = qi < L ? delta[row] : 0.f;
      }
      __syncthreads();
      // lane = query i of the tile
      const int qi = q0 + lane;
      float p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) p[r] = ds[r] = 0.f;
      const float* qrow = sQ + lane * (D + 1);
      const float* orow = sO + lane * (D + 1);
      for (int d = 0; d < D; d++) {
        float qd = qrow[d], od = orow[d];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) {
          p[r] += qd * sK[(row0 + r) * D + d];   // score
          ds[r] += od * sV[(row0 + r) * D + d];  // dO_i . V_j
        }
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        int kj = k0 + row0 + r;
        bool valid = qi < L && kj < L && visible(qi, kj, causal, mods);
        float dcap = 1.f;
        float pr = valid ? exp2f(cap_score(p[r] + rel_bias_log2(mods, qi, kj, h), mods, &dcap) - sL[lane]) : 0.f;
        ds[r] = pr * (ds[r] - sD[lane]) * dcap;
        p[r] = pr;
        if (mods.drel && valid) atomicAdd(mods.drel + int64_t(kj - qi + mods.span - 1) * mods.heads + h, ds[r]);
      }
      // lane = head dims
      for (int i2 = 0; i2 < kTile; i2++) {
        float qv[NPER], ov[NPER];
#pragma unroll
        for (int i = 0; i < NPER; i++) {
          int d = lane + 32 * i;
          qv[i] = d < D ? sQ[i2 * (D + 1) + d] : 0.f;
          ov[i] = d < D ? sO[i2 * (D + 1) + d] : 0.f;
        }
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; r++) {
          float pj = __shfl_sync(kFull, p[r], i2), dsj = __shfl_sync(kFull, ds[r], i2);
#pragma unroll
          for (int i = 0; i < NPER; i++) {
            dV[r][i] += pj * ov[i];
            dK[r][i] += dsj * qv[i];
          }
        }
      }
    }
  }
  // sQ held q * scale * log2(e): dK = scale * sum dS q = ln2 * sum dS sQ
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    int kj = k0 + row0 + r;
    if (kj >= L) continue;
    int64_t row = (int64_t(start + kj) * Hkv + hk) * D;
#pragma unroll
    for (int i = 0; i < NPER; i++) {
      int d = lane + 32 * i;
      if (d < D) {
        dk[row + d] = from_f<T>(dK[r][i] * kLn2);
        dv[row + d] = from_f<T>(dV[r][i]);
      }
    }
  }
}

// grid (ceil(max_len/32), Hq, B), block 256: this block owns 32 queries of head h.
template <typename T, int NPER>
__global__ void __launch_bounds__(kWarps * 32)
attention_backward_dq_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v, const float* lse,
                             const float* delta, const int32_t* cu_seqlens, int Hq, int Hkv, int D, bool causal,
                             float scale_log2, float scale, Mods mods) {
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
  const int start = cu_seqlens[b], L = cu_seqlens[b + 1] - start;
  const int q0 = blockIdx.x * kTile;
  if (q0 >= L) return;
  extern __shared__ float smem[];
  float* sQ = smem;                  // [32][D]    q * scale * log2(e)
  float* sO = sQ + kTile * D;        // [32][D]    dout
  float* sK = sO + kTile * D;        // [32][D+1]
  float* sV = sK + kTile * (D + 1);  // [32][D+1]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int row0 = warp * kRowsPerWarp;

  for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
    int r = idx / D, d = idx - r * D, qi = q0 + r;
    int64_t src = (int64_t(start + qi) * Hq + h) * D + d;
    sQ[idx] = qi < L ? to_f(q[src]) * scale_log2 : 0.f;
    sO[idx] = qi < L ? to_f(dout[src]) : 0.f;
  }
  float lse2[kRowsPerWarp], dlt[kRowsPerWarp], acc[kRowsPerWarp][NPER];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    int qi = q0 + row0 + r;
    int64_t row = int64_t(start + min(qi, L - 1)) * Hq + h;
    lse2[r] = lse[row] * kLog2e;
    dlt[r] = delta[row];
#pragma unroll
    for (int i = 0; i < NPER; i++) acc[r][i] = 0.f;
  }
  const int kv_end = causal ? min(q0 + kTile, L) : L;
  for (int k0 = 0; k0 < kv_end; k0 += kTile) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kTile * D; idx += blockDim.x) {
      int j = idx / D, d = idx - j * D, kj = k0 + j;
      int64_t src = (int64_t(start + kj) * Hkv + hk) * D + d;
      sK[j * (D + 1) + d] = kj < L ? to_f(k[src]) : 0.f;
      sV[j * (D + 1) + d] = kj < L ? to_f(v[src]) : 0.f;
    }
    __syncthreads();
    // lane = key j
    float s[kRowsPerWarp], dp[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) s[r] = dp[r] = 0.f;
    const float* krow = sK + lane * (D + 1);
    const float* vrow = sV + lane * (D + 1);
    for (int d = 0; d < D; d++) {
      float kd = krow[d], vd = vrow[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        s[r] += sQ[(row0 + r) * D + d] * kd;
        dp[r] += sO[(row0 + r) * D + d] * vd;
      }
    }
    const int kj = k0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; r++) {
      int qi = q0 + row0 + r;
      bool valid = kj < L && qi < L && visible(qi, kj, causal, mods);
      float dcap = 1.f;
      float p = valid ? exp2f(cap_score(s[r] + rel_bias_log2(mods, qi, kj, h), mods, &dcap) - lse2[r]) : 0.f;
      s[r] = p * (dp[r] - dlt[r]) * dcap;  // dS
    }
    // lane = head dims: acc += dS K
    for (int j = 0; j < kTile; j++) {
      float kv[NPER];
#pragma unroll
      for (int i = 0; i < NPER; i++) {
        int d = lane + 32 * i;
        kv[i] = d < D ? sK[j * (D + 1) + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; r++) {
        float dsj = __shfl_sync(kFull, s[r], j);
#pragma unroll
        for (int i = 0; i < NPER; i++) acc[r][i] += dsj * kv[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; r++) {
    int qi = q0 + row0 + r;
    if (qi >= L) continue;
    int64_t row = (int64_t(start + qi) * Hq + h) * D;
#pragma unroll
    for (int i = 0; i < NPER; i++) {
      int d = lane + 32 * i;
      if (d < D) dq[row + d] = from_f<T>(acc[r][i] * scale);
    }
  }
}

// ---- launchers ----

namespace {

template <typename K>
void set_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    LMDR_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <typename T, int NPER>
void forward_impl(void* out, float* lse, const void* q, const void* k, const void* v, const int32_t* cu, int64_t B,
                  int64_t max_len, int64_t Hq, int64_t Hkv, int64_t D, bool causal, float scale, Mods mods,
                  cudaStream_t s) {
  dim3 grid(unsigned(ceil_div(max_len, kTile)), unsigned(Hq), unsigned(B));
  size_t smem = size_t(kTile * D + kTile * (D + 1) + kTile * D) * sizeof(float);
  auto kernel = attention_forward_kernel<T, NPER>;
  set_smem(kernel, smem);
  kernel<<<grid, kWarps * 32, smem, s>>>(static_cast<T*>(out), lse, static_cast<const T*>(q),
                                         static_cast<const T*>(k), static_cast<const T*>(v), cu, int(Hq), int(Hkv),
                                         int(D), causal, scale * kLog2e, mods);
  LMDR_LAUNCH_CHECK("attention_forward_kernel");
}

template <typename T, int NPER>
void backward_impl(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q, const void* k,
                   const void* v, const void* out, const float* lse, const int32_t* cu, int64_t B, int64_t max_len,
                   int64_t T_, int64_t Hq, int64_t Hkv, int64_t D, bool causal, float scale, Mods mods,
                   cudaStream_t s) {
  int64_t rows = T_ * Hq;
  attention_delta_kernel<T><<<unsigned(ceil_div(rows * 32, 256)), 256, 0, s>>>(
      delta, static_cast<const T*>(dout), static_cast<const T*>(out), rows, int(D));
  LMDR_LAUNCH_CHECK("attention_delta_kernel");

  dim3 grid_kv(unsigned(ceil_div(max_len, kTile)), unsigned(Hkv), unsigned(B));
  size_t smem_kv = size_t(2 * kTile * D + 2 * kTile * (D + 1) + 2 * kTile) * sizeof(float);
  auto kv_kernel = attention_backward_dkdv_kernel<T, NPER>;
  set_smem(kv_kernel, smem_kv);
  kv_kernel<<<grid_kv, kWarps * 32, smem_kv, s>>>(static_cast<T*>(dk), static_cast<T*>(dv),
                                                  static_cast<const T*>(dout), static_cast<const T*>(q),
                                                  static_cast<const T*>(k), static_cast<const T*>(v), lse, delta, cu,
                                                  int(Hq), int(Hkv), int(D), causal, scale * kLog2e, mods);
  LMDR_LAUNCH_CHECK("attention_backward_dkdv_kernel");

  dim3 grid_q(unsigned(ceil_div(max_len, kTile)), unsigned(Hq), unsigned(B));
  size_t smem_q = size_t(2 * kTile * D + 2 * kTile * (D + 1)) * sizeof(float);
  auto q_kernel = attention_backward_dq_kernel<T, NPER>;
  set_smem(q_kernel, smem_q);
  q_kernel<<<grid_q, kWarps * 32, smem_q, s>>>(static_cast<T*>(dq), static_cast<const T*>(dout),
                                               static_cast<const T*>(q), static_cast<const T*>(k),
                                               static_cast<const T*>(v), lse, delta, cu, int(Hq), int(Hkv), int(D),
                                               causal, scale * kLog2e, scale, mods);
  LMDR_LAUNCH_CHECK("attention_backward_dq_kernel");
}

// Calls f.template operator()<T, NPER>() for the dtype and NPER = ceil(D / 32).
#define LMDR_ATTN_DISPATCH(dtype, D, CALL)                                            \
  do {                                                                                \
    int nper_ = int((D + 31) / 32);                                                   \
    if (dtype == DType::BF16) {                                                       \
      using T = __nv_bfloat16;                                                        \
      switch (nper_) {                                                                \
        case 1: { constexpr int NPER = 1; CALL; break; }                              \
        case 2: { constexpr int NPER = 2; CALL; break; }                              \
        case 3: { constexpr int NPER = 3; CALL; break; }                              \
        case 4: { constexpr int NPER = 4; CALL; break; }                              \
        case 5: { constexpr int NPER = 5; CALL; break; }                              \
        case 6: { constexpr int NPER = 6; CALL; break; }                              \
        case 7: { constexpr int NPER = 7; CALL; break; }                              \
        default: { constexpr int NPER = 8; CALL; break; }                             \
      }                                                                               \
    } else {                                                                          \
      using T = float;                                                                \
      switch (nper_) {                                                                \
        case 1: { constexpr int NPER = 1; CALL; break; }                              \
        case 2: { constexpr int NPER = 2; CALL; break; }                              \
        case 3: { constexpr int NPER = 3; CALL; break; }                              \
        case 4: { constexpr int NPER = 4; CALL; break; }                              \
        case 5: { constexpr int NPER = 5; CALL; break; }                              \
        case 6: { constexpr int NPER = 6; CALL; break; }                              \
        case 7: { constexpr int NPER = 7; CALL; break; }                              \
        default: { constexpr int NPER = 8; CALL; break; }                             \
      }                                                                               \
    }                                                                                 \
  } while (0)

}  // namespace

bool attention_supports_head_dim(int64_t D) { return D >= 2 && D <= 256 && D % 2 == 0; }

template <int D>
void forward_tc(void* out, float* lse, const void* q, const void* k, const void* v, const int32_t* cu, int64_t B,
                int64_t max_len, int64_t Hq, int64_t Hkv, bool causal, float scale, cudaStream_t s) {
  dim3 grid(unsigned(ceil_div(max_len, tc::kRows)), unsigned(Hq), unsigned(B));
  size_t smem = tc::smem_bytes(D);
  auto kernel = attention_forward_tc_kernel<D>;
  set_smem(kernel, smem);
  kernel<<<grid, tc::kWarps * 32, smem, s>>>(static_cast<__nv_bfloat16*>(out), lse,
                                             static_cast<const __nv_bfloat16*>(q),
                                             static_cast<const __nv_bfloat16*>(k),
                                             static_cast<const __nv_bfloat16*>(v), cu, int(Hq), int(Hkv), causal,
                                             scale * kLog2e);
  LMDR_LAUNCH_CHECK("attention_forward_tc_kernel");
}

void attention_forward(void* out, float* lse, const void* q, const void* k, const void* v, DType t,
                       const int32_t* cu_seqlens, int64_t B, int64_t max_len, int64_t tokens, int64_t Hq,
                       int64_t Hkv, int64_t D, bool causal, float scale, double softcap, int64_t window,
                       cudaStream_t s, const AttnRelBias& rel) {
  if (B <= 0 || max_len <= 0 || tokens <= 0) return;
  const Mods mods{float(softcap * double(kLog2e)), int(window), rel.table, nullptr, int(rel.span), int(Hq)};
  // tensor cores for bf16 with 16-byte aligned rows; LMDR_ATTENTION_SIMT=1 forces the SIMT kernel
  static const bool simt_only = [] {
    const char* e = std::getenv("LMDR_ATTENTION_SIMT");
    return e && *e && *e != '0';
  }();
  const bool plain = softcap <= 0 && window <= 0 && !rel.table;
  if (t == DType::BF16 && plain && !simt_only && aligned16(q) && aligned16(k) && aligned16(v)) {
    switch (D) {
      case 16: return forward_tc<16>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      case 32: return forward_tc<32>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      case 64: return forward_tc<64>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      case 80: return forward_tc<80>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      case 96: return forward_tc<96>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      case 128: return forward_tc<128>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, causal, scale, s);
      default: break;
    }
  }
  LMDR_ATTN_DISPATCH(t, D, (forward_impl<T, NPER>(out, lse, q, k, v, cu_seqlens, B, max_len, Hq, Hkv, D, causal,
                                                  scale, mods, s)));
}

void attention_backward(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q, const void* k,
                        const void* v, const void* out, const float* lse, DType t, const int32_t* cu_seqlens,
                        int64_t B, int64_t max_len, int64_t tokens, int64_t Hq, int64_t Hkv, int64_t D,
                        bool causal, float scale, double softcap, int64_t window, cudaStream_t s,
                        const AttnRelBias& rel) {
  if (B <= 0 || max_len <= 0 || tokens <= 0) return;
  const Mods mods{float(softcap * double(kLog2e)), int(window), rel.table, rel.grad, int(rel.span), int(Hq)};
  LMDR_ATTN_DISPATCH(t, D, (backward_impl<T, NPER>(dq, dk, dv, delta, dout, q, k, v, out, lse, cu_seqlens, B,
                                                   max_len, tokens, Hq, Hkv, D, causal, scale, mods, s)));
}

}  // namespace lmdr::cuda
