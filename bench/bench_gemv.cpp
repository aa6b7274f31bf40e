// bench_gemv: speed of the small-batch kernels (forward/gemv.h) per stored type, as bandwidth
// achieved against the machine's read bandwidth measured in the same run, at 1 and 2 threads;
// and 16 tokens through gemv vs the large-batch path (dequantised tile + OpenBLAS sgemm) that
// matmul_forward uses above kGemvMaxTokens. Not a test: asserts nothing.
//
//   bench_gemv [--mib 128] [--types q4_K,q8_0,...] [--portable]
//
// W is K = 4096 columns and as many rows as make --mib MiB in its stored type (larger than the
// L3 cache, so each call streams W from memory, as decode does); its rows are 256 quantised
// random rows repeated. Read bandwidth: an AVX2 sum over a buffer of the same size. Each figure
// is the best of 3 repetitions of >= 0.2 s; single-thread figures in CPU time, the rest wall
// time. --mib 1 keeps W in L2: the kernels' compute rate alone. Run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset;
// prints the load average, since the machine may be shared.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "forward/gemv.h"
#include "forward/matmul.h"
#include "quant/quant.h"

namespace {

using temper::DType;
using temper::forward::Matrix;

// The clock: wall time, or this process's CPU time (single-thread figures on a shared machine:
// time spent descheduled does not count).
double now(bool cpu) {
  if (!cpu) return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double seconds_per_call(const std::function<void()>& fn, bool cpu = false) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    int calls = 0;
    const double t0 = now(cpu);
    double el = 0;
    do {
      fn();
      ++calls;
      el = now(cpu) - t0;
    } while (el < 0.2);
    best = std::min(best, el / calls);
  }
  return best;
}

std::string load_average() {
  double l[3] = {};
  char buf[64] = "?";
  if (getloadavg(l, 3) == 3) std::snprintf(buf, sizeof buf, "%.2f %.2f", l[0], l[1]);
  return buf;
}

// GB/s of a plain streaming read (sum of floats) over `bytes`, at the current thread count.
double read_bandwidth(size_t bytes, bool cpu = false) {
  std::vector<float> buf(bytes / 4, 1.0f);
  volatile float sink = 0;
  const double s = seconds_per_call([&] {
    float total = 0;
    const int64_t n = int64_t(buf.size());
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t c = 0; c < n; c += 4096) {
      float part[8] = {};
      for (int64_t i = c; i < std::min(n, c + 4096); i += 8)
        for (int j = 0; j < 8; ++j) part[j] += buf[size_t(i + j)];
      for (float p : part) total += p;
    }
    sink = total;
  }, cpu);
  (void)sink;
  return double(bytes) / s / 1e9;
}

const DType kTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16,   DType::kQ8_0,   DType::kQ6_K,
                        DType::kQ5_K, DType::kQ4_K, DType::kQ3_K,   DType::kQ2_K,   DType::kQ5_1,
                        DType::kQ5_0, DType::kQ4_1, DType::kQ4_0,   DType::kIQ4_NL, DType::kIQ4_XS};

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 128;
  std::string only;
  bool portable = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mib" && i + 1 < argc) mib = size_t(std::atoi(argv[++i]));
    else if (a == "--types" && i + 1 < argc) only = "," + std::string(argv[++i]) + ",";
    else if (a == "--portable") portable = true;
    else {
      std::fprintf(stderr, "usage: bench_gemv [--mib N] [--types q4_K,q8_0,...] [--portable]\n");
      return 2;
    }
  }
  if (portable) temper::forward::set_gemv_path(temper::forward::GemvPath::kPortable);
  const int max_threads = omp_get_max_threads();
  const size_t bytes = mib << 20;
  std::printf("bench_gemv: W %zu MiB per type, K = 4096; OPENBLAS_CORETYPE %s; load average (1, 5 min) %s\n", mib,
              std::getenv("OPENBLAS_CORETYPE") ? "SET (unset it for fair figures)" : "unset", load_average().c_str());
  omp_set_num_threads(1);
  const double bw1 = read_bandwidth(bytes, true);
  omp_set_num_threads(max_threads);
  const double bwn = read_bandwidth(bytes);
  std::printf("read bandwidth: %.1f GB/s (1 thread, CPU time), %.1f GB/s (%d threads, wall)\n\n", bw1, bwn, max_threads);
  std::printf("%-7s %5s | %-22s | %-22s | %-26s\n", "type", "B/w", "T=1, 1 thread (CPU t)", "T=1, all threads",
              "T=16 ms: gemv / tile+sgemm");

  const int64_t K = 4096, n_seed = 256;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> wf(size_t(n_seed * K));
  for (auto& v : wf) v = nd(rng);
  std::vector<float> x(size_t(16 * K));
  for (auto& v : x) v = nd(rng);
  for (const DType t : kTypes) {
    const std::string name(temper::dtype_name(t));
    if (!only.empty() && only.find("," + name + ",") == std::string::npos) continue;
    const size_t rb = temper::quant::row_bytes(t, K);
    const int64_t N = int64_t(bytes / rb);
    std::vector<uint8_t> w(rb * size_t(N));
    temper::quant::quantize_rows(t, wf.data(), w.data(), std::min(n_seed, N), K, nullptr);
    for (int64_t r = n_seed; r < N; ++r) std::memcpy(&w[size_t(r) * rb], &w[size_t(r % n_seed) * rb], rb);
    const Matrix m{w.data(), t, N, K, rb};
    std::vector<float> y(size_t(16 * N));
    const double wb = double(rb) * double(N);
    omp_set_num_threads(1);
    const double s1 = seconds_per_call([&] { temper::forward::gemv_forward(y.data(), x.data(), m, 1, N); }, true);
    omp_set_num_threads(max_threads);
    const double sn = seconds_per_call([&] { temper::forward::gemv_forward(y.data(), x.data(), m, 1, N); });
    const double g16 = seconds_per_call([&] { temper::forward::gemv_forward(y.data(), x.data(), m, 16, N); });
    std::vector<float> scratch;
    const double s16 = seconds_per_call([&] {
      temper::forward::for_each_f32_tile(m, scratch, [&](int64_t r0, int64_t nr, const float* tile) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 16, int(nr), int(K), 1.0f, x.data(), int(K), tile,
                    int(K), 0.0f, y.data() + r0, int(N));
      });
    });
    std::printf("%-7s %5.3f | %5.1f GB/s (%3.0f%% BW) | %5.1f GB/s (%3.0f%% BW) | %7.1f / %7.1f\n", name.c_str(),
                double(rb) / double(K), wb / s1 / 1e9, 100 * wb / s1 / 1e9 / bw1, wb / sn / 1e9,
                100 * wb / sn / 1e9 / bwn, g16 * 1e3, s16 * 1e3);
    std::fflush(stdout);
  }
  std::printf("\nload average at the end: %s\n", load_average().c_str());
  return 0;
}
