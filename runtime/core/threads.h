// One thread pool: OpenMP. The thread count is set once (--threads or TEMPER_THREADS, default:
// all cores) and also handed to OpenBLAS, which is Debian's OpenMP build and so shares the pool.
#pragma once

namespace temper {
void set_num_threads(int n);  // n <= 0: default
int num_threads();
}  // namespace temper
