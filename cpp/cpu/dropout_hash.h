// The counter-based hash behind LoRA dropout, shared by every backend so a mask drawn on one
// device is the same mask on another. Element (row_key, col) of a dropout with probability p
// and seed s is kept iff u >= float32(p), where
//   mix(z)   = splitmix64 finaliser: z ^= z>>30; z *= 0xBF58476D1CE4E5B9; z ^= z>>27;
//              z *= 0x94D049BB133111EB; z ^= z>>31
//   r        = mix(s ^ mix(row_key + 0x9E3779B97F4A7C15))
//   h        = mix(r + 0x9E3779B97F4A7C15 * (col + 1))        (all arithmetic mod 2^64)
//   u        = (h >> 40) * 2^-24                               (uniform on [0, 1), 24 bits)
// Nothing depends on how rows are batched or split: only (seed, row_key, col).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define LMDR_HOST_DEVICE __host__ __device__
#else
#define LMDR_HOST_DEVICE
#endif

namespace lmdr {

LMDR_HOST_DEVICE constexpr inline uint64_t dropout_mix(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}

// Per-row part of the hash; compute once per row.
LMDR_HOST_DEVICE constexpr inline uint64_t dropout_row_hash(uint64_t seed, uint64_t row_key) {
  return dropout_mix(seed ^ dropout_mix(row_key + 0x9E3779B97F4A7C15ull));
}

// u in [0, 1) for column col of a row with row hash r.
LMDR_HOST_DEVICE constexpr inline float dropout_uniform(uint64_t r, uint64_t col) {
  uint64_t h = dropout_mix(r + 0x9E3779B97F4A7C15ull * (col + 1));
  return float(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace lmdr
