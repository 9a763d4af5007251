// One packed batch as every layer sees it: host-side ids, offsets and per-token keys.
#pragma once
#include <cstdint>
#include <vector>

namespace lmdr {

struct Batch {
  std::vector<int32_t> ids;         // [T] token ids, sequences concatenated
  std::vector<int32_t> cu_seqlens;  // [B+1] offsets, cu_seqlens[0] = 0
  std::vector<int32_t> positions;   // [T] 0..L_b-1 within each sequence
  std::vector<uint64_t> row_keys;   // [T] (seq key << 32) | position: dropout masks stable under chunking
  int64_t tokens = 0, seqs = 0;
  bool train = false;               // LoRA dropout on
  uint64_t dropout_seed = 0;
};

}  // namespace lmdr
