#include "core/threads.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace temper {
namespace {
int g_threads = 0;

// Processes of one job started on this machine by a launcher (mpirun, srun): the default
// thread count is each one's share of the cores, so two ranks on one box do not fight.
int ranks_on_this_machine() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* v = std::getenv(name); v && std::atoi(v) > 0) return std::atoi(v);
  return 1;
}
}  // namespace

void set_num_threads(int n) {
  if (n <= 0) {
    const char* env = std::getenv("TEMPER_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  // omp_get_num_procs counts the cores this process may run on: a launcher that binds each rank
  // to its own cores has already split them; one that does not (--bind-to none) has not.
  if (n <= 0) {
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    n = omp_get_num_procs();
    if (online > 0) n = std::min<int>(n, std::max<int>(1, int(online) / ranks_on_this_machine()));
  }
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
