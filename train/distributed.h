// Data-parallel training over MPI (issue 16): `mpirun -np N temper train ...` runs N ranks, each
// holding the (mmapped) base and the adapters. Every rank walks the same data order; rank r
// takes examples r, r + N, r + 2N, ... of each optimiser step's global batch, and one allreduce
// per step sums the LoRA gradients, the loss and the token counts, so every rank takes the same
// AdamW step. Rank 0 alone writes checkpoints, the adapter and the log. Without MPI (built
// without it, or launched alone) the world is one rank and nothing here costs anything.
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace temper::train {

struct World {
  int rank = 0;
  int size = 1;
  bool root() const { return rank == 0; }
};

// Starts MPI when temper was built with it and a launcher started this process (else a world
// of one). Throws Error when a launcher started several processes but temper has no MPI: each
// would train alone and write the same files.
World start_world();

// Sums `x` element-wise over all ranks, in place, identically on every rank (no-op for one).
void allreduce_sum(std::span<float> x);
void allreduce_sum(std::span<double> x);

// Ends the job on every rank after an error on this one: a rank that stops while the others
// wait in an allreduce would otherwise hang them. Prints `message` first (rank 0 plainly,
// others prefixed with their rank, after a pause in which rank 0, when it fails the same way,
// ends the job alone and so the message appears once). Never returns.
[[noreturn]] void abort_world(const World& world, const std::string& message);

// MPI_Finalize when start_world() started MPI.
void end_world();

// Whether this build can run several ranks.
bool mpi_available();

}  // namespace temper::train
