#include "core/threads.h"

#include <omp.h>
#include <unistd.h>

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

void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;  // the user's choice
  // Set before exec, so the new image sees it and this branch is not taken again.
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): keep running with libgomp's default policy; the environment
  // variable still reaches any child process.
}

}  // namespace temper
