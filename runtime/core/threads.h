// One thread pool: OpenMP. The thread count is set once (--threads or TEMPER_THREADS, default:
// all cores this process may use, divided among the ranks an MPI/Slurm launcher started on this
// machine) and also handed to OpenBLAS, which is Debian's OpenMP build and so shares the pool.
#pragma once

namespace temper {
void set_num_threads(int n);  // n <= 0: default
int num_threads();

// Makes the pool's idle threads sleep at once instead of spinning (OMP_WAIT_POLICY=passive),
// unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT. libgomp reads these only in its
// load-time constructor, which runs before main, so setting them needs a re-exec of this
// executable (/proc/self/exe, same argv, about a millisecond); on failure the default policy
// stays. Call first thing in main, before any other work. Why: libgomp's default spins
// ~300000 iterations at every barrier; on a busy machine (temper next to Ollama, or other
// builds) a thread spins while the one it waits for is descheduled: decode of a 60M Q4_K_M
// model at 2 threads and load 15 took 26 s spinning vs 4.7 s passive.
void use_passive_openmp_wait(char** argv);
}  // namespace temper
