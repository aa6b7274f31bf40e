// MPI behind train/distributed.h. Built with TEMPER_HAVE_MPI when CMake finds MPI (OpenMPI on
// Debian); otherwise every function is the one-rank case.
#include "train/distributed.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"

#ifdef TEMPER_HAVE_MPI
#include <mpi.h>
#endif

namespace temper::train {

namespace {

bool g_started = false;

// Ranks a launcher says it started, from its environment (0 when not launched by one): how a
// build without MPI notices that it runs under mpirun or srun.
int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"})
    if (const char* v = std::getenv(name); v && std::atoi(v) > 0) return std::atoi(v);
  return 0;
}

}  // namespace

bool mpi_available() {
#ifdef TEMPER_HAVE_MPI
  return true;
#else
  return false;
#endif
}

World start_world() {
  const int launched = launched_ranks();
#ifdef TEMPER_HAVE_MPI
  // Started alone (no launcher): no MPI at all, so a plain run never touches the MPI runtime.
  if (launched == 0 && !std::getenv("OMPI_COMM_WORLD_RANK")) return {};
  int provided = 0;
  // FUNNELED: only the main thread calls MPI; the OpenMP pool never does.
  TEMPER_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
               "MPI_Init failed");
  g_started = true;
  World w;
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  return w;
#else
  TEMPER_CHECK(launched <= 1, "launched as ", launched,
               " processes (mpirun/srun), but this temper was built without MPI: each would train "
               "alone and write the same files; install libopenmpi-dev and rebuild, or run one process");
  return {};
#endif
}

#ifdef TEMPER_HAVE_MPI
namespace {
void sum_in_place(void* data, size_t n, MPI_Datatype type) {
  if (!g_started || n == 0) return;
  TEMPER_CHECK(n <= size_t(INT_MAX), "allreduce of ", n, " values: more than MPI's int count");
  MPI_Allreduce(MPI_IN_PLACE, data, int(n), type, MPI_SUM, MPI_COMM_WORLD);
}
}  // namespace
void allreduce_sum(std::span<float> x) { sum_in_place(x.data(), x.size(), MPI_FLOAT); }
void allreduce_sum(std::span<double> x) { sum_in_place(x.data(), x.size(), MPI_DOUBLE); }
#else
void allreduce_sum(std::span<float>) {}
void allreduce_sum(std::span<double>) {}
#endif

void abort_world(const World& world, const std::string& message) {
  if (!world.root()) std::this_thread::sleep_for(std::chrono::seconds(2));
  if (world.root())
    std::fprintf(stderr, "temper: error: %s\n", message.c_str());
  else
    std::fprintf(stderr, "temper: error: rank %d of %d: %s\n", world.rank, world.size, message.c_str());
  std::fflush(stderr);
#ifdef TEMPER_HAVE_MPI
  if (g_started) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::exit(1);
}

void end_world() {
#ifdef TEMPER_HAVE_MPI
  if (g_started) MPI_Finalize();
  g_started = false;
#endif
}

}  // namespace temper::train
