// LMDR_CUDA_PROFILE=1: every backend op is timed with a pair of CUDA events on its stream (only
// the outermost op when ops nest), the pairs are resolved whenever the backend synchronises
// anyway (download, synchronize), and at exit a table per op name (calls, total ms, share,
// mean) goes to stderr. Off by default: no events, one branch per op.
#pragma once
#include <cuda_runtime.h>

namespace lmdr::cuda {

bool op_profile_enabled();
void op_profile_begin(const char* op, cudaStream_t s);
void op_profile_end(cudaStream_t s);
void op_profile_collect();  // after a stream synchronisation: the recorded pairs are complete

}  // namespace lmdr::cuda
