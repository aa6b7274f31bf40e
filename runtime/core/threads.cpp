#include "core/threads.h"

#include <omp.h>

#include <cstdlib>

namespace temper {
namespace {
int g_threads = 0;
}

void set_num_threads(int n) {
  if (n <= 0) {
    const char* env = std::getenv("TEMPER_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  if (n <= 0) n = omp_get_num_procs();
  g_threads = n;
  omp_set_num_threads(n);
}

int num_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

}  // namespace temper
