#include "cpu/isa.h"

#include <cstdlib>
#include <string>

namespace lmdr::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  Isa best = Isa::Generic;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
  if (best == Isa::Avx2 && __builtin_cpu_supports("avx512f")) best = Isa::Avx512;
#else
  Isa best = Isa::Generic;
#endif
  const char* cap = std::getenv("LMDR_CPU_ISA");
  if (cap && *cap) {
    std::string c = cap;
    Isa want = c == "generic" ? Isa::Generic : c == "avx2" ? Isa::Avx2 : Isa::Avx512;
    if (want < best) best = want;
  }
  return best;
}

}  // namespace

Isa cpu_isa() {
  static const Isa chosen = detect();
  return chosen;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace lmdr::cpu
