// bench_quant: quantization throughput (MB of f32 input per second) of temper's quantizers vs
// ggml_quantize_chunk (libggml-base.so of the pinned node-llama-cpp), same input in the same run,
// at 1 and 2 threads, with and without an imatrix. Also checks that the bytes are identical.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "quant/ggml_ref.h"
#include "quant/quant.h"
#include "quant/quant_inputs.h"

namespace {

using temper::DType;

// Best-of-3 seconds per call, each repetition running `fn` until 0.2 s have passed.
double seconds_per_call(const std::function<void()>& fn) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    int calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    do {
      fn();
      ++calls;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.2);
    best = std::min(best, el / calls);
  }
  return best;
}

}  // namespace

int main() {
  // Project rule: benchmarks never run with OpenBLAS tuning overrides from the environment.
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("OPENBLAS_L2_SIZE");
  std::printf("bench_quant: unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE\n");
  const auto& ggml = temper::test::GgmlRef::get();
  const int64_t n_rows = 64, n_per_row = 4096;
  const auto src = temper::test::make_rows(temper::test::Shape::kNormal, n_rows, n_per_row, 1);
  const auto imat = temper::test::make_imatrix(n_per_row, 2);
  const double mb = double(src.size()) * 4 / 1e6;
  std::printf("input: %lld rows x %lld f32 = %.1f MB\n", (long long)n_rows, (long long)n_per_row, mb);
  std::printf("%-8s %-7s %10s %10s %7s %10s %10s %7s  bytes\n", "type", "imatrix", "ours 1t", "ggml 1t",
              "ratio", "ours 2t", "ggml 2t", "ratio");
  bool all_same = true;
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K, DType::kIQ4_NL}) {
    for (bool with_imatrix : {false, true}) {
      const float* qw = with_imatrix ? imat.data() : nullptr;
      const size_t rb = temper::quant::row_bytes(t, n_per_row);
      std::vector<uint8_t> ours(rb * n_rows), theirs(rb * n_rows);
      auto run_ours = [&] { temper::quant::quantize_rows(t, src.data(), ours.data(), n_rows, n_per_row, qw); };
      auto run_ggml1 = [&] { ggml.quantize_chunk(t, src.data(), theirs.data(), n_rows, n_per_row, qw); };
      auto run_ggml2 = [&] {  // two threads, each on half of the rows, one ggml call each
        const int64_t h = n_rows / 2;
        std::thread a([&] { ggml.quantize_chunk(t, src.data(), theirs.data(), h, n_per_row, qw); });
        ggml.quantize_chunk(t, src.data() + h * n_per_row, theirs.data() + h * rb, n_rows - h, n_per_row, qw);
        a.join();
      };
      omp_set_num_threads(1);
      const double o1 = seconds_per_call(run_ours);
      omp_set_num_threads(2);
      const double o2 = seconds_per_call(run_ours);
      const double g1 = seconds_per_call(run_ggml1);
      const double g2 = seconds_per_call(run_ggml2);
      const bool same = ours == theirs;
      all_same = all_same && same;
      std::printf("%-8s %-7s %10.1f %10.1f %6.2fx %10.1f %10.1f %6.2fx  %s\n",
                  std::string(temper::dtype_name(t)).c_str(), with_imatrix ? "yes" : "no", mb / o1, mb / g1,
                  g1 / o1, mb / o2, mb / g2, g2 / o2, same ? "identical" : "DIFFERENT");
    }
  }
  std::printf("(MB/s of f32 input; ratio = ours / ggml throughput)\n");
  return all_same ? 0 : 1;
}
