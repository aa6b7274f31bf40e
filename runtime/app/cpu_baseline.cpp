// The portable build (the default: -march=x86-64-v3) lets the compiler use AVX2, FMA, F16C,
// BMI1/2, LZCNT and MOVBE anywhere, so on an older CPU the first such instruction would kill
// temper with SIGILL and no word of why. This file alone is compiled for plain x86-64 (see
// runtime/CMakeLists.txt) and checks the CPU in a constructor of the highest priority, which
// runs before every other static initialiser of the executable. AVX-512 and AMX are never
// assumed: the kernels that use them check CPUID at their call (forward/gemv.cpp, oneDNN).
#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

#ifdef TEMPER_BASELINE_V3
struct Feature {
  const char* name;
  bool present;
};

// XCR0 bits 1 and 2 (SSE and AVX state): without them the OS does not save ymm registers and
// AVX instructions fault even when CPUID lists them.
bool os_saves_ymm(unsigned ecx1) {
  if (!(ecx1 & bit_OSXSAVE)) return false;
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0x6) == 0x6;
}

__attribute__((constructor(101))) void check_cpu_baseline() {
  unsigned a = 0, b = 0, c1 = 0, d = 0;
  __get_cpuid(1, &a, &b, &c1, &d);
  unsigned b7 = 0, c7 = 0, d7 = 0;
  __get_cpuid_count(7, 0, &a, &b7, &c7, &d7);
  unsigned ce = 0;
  __get_cpuid(0x80000001, &a, &b, &ce, &d);
  const bool ymm = os_saves_ymm(c1);
  const Feature features[] = {
      {"AVX", (c1 & bit_AVX) && ymm}, {"AVX2", (b7 & bit_AVX2) && ymm},
      {"FMA", (c1 & bit_FMA) != 0},   {"F16C", (c1 & bit_F16C) != 0},
      {"BMI1", (b7 & bit_BMI) != 0},  {"BMI2", (b7 & bit_BMI2) != 0},
      {"LZCNT", (ce & bit_LZCNT) != 0}, {"MOVBE", (c1 & bit_MOVBE) != 0},
  };
  std::string missing;
  for (const Feature& f : features)
    if (!f.present) missing += std::string(missing.empty() ? "" : ", ") + f.name;
  if (missing.empty()) return;
  std::fprintf(stderr,
               "temper: this CPU lacks %s. This build targets x86-64-v3 (any x86-64 with AVX2, "
               "FMA and F16C: Intel Haswell / AMD Zen or newer). Rebuild for this CPU with "
               "cmake -DTEMPER_NATIVE=ON.\n",
               missing.c_str());
  std::_Exit(2);
}
#endif

}  // namespace
