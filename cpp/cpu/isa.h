// Which x86-64 vector extension the hot CPU kernels use. Kernels are compiled once per level
// through GCC target attributes (never -march=native, so one binary runs on any x86-64) and
// the best level the running CPU supports is picked once. $LMDR_CPU_ISA=avx512|avx2|generic
// caps it (to test every path on one machine).
#pragma once

namespace lmdr::cpu {

enum class Isa { Generic, Avx2, Avx512 };  // generic = SSE2 baseline; avx2 includes FMA

Isa cpu_isa();
const char* isa_name(Isa isa);

}  // namespace lmdr::cpu
