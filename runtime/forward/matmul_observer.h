// An optional observer of every weight product y = x·Wᵀ the forward pass computes: the weight
// matrix and its input rows x (T, W.cols), called before the product. `temper imatrix` uses it
// to sum squared activations per input column. Installed per thread (the thread calling
// Session::eval); none is installed by default and matmul_forward then only tests a null
// pointer. Expert matrices are seen with only the rows routed to them (forward/moe.cpp).
#pragma once
#include <cstdint>

#include "forward/weights.h"

namespace temper::forward {

class MatmulObserver {
 public:
  virtual ~MatmulObserver() = default;
  virtual void on_matmul(const Matrix& w, const float* x, int64_t n_rows) = 0;
};

// The observer of the calling thread, or nullptr.
MatmulObserver* matmul_observer();

// Installs `o` for the calling thread for the scope's lifetime (restoring the previous one).
class ScopedMatmulObserver {
 public:
  explicit ScopedMatmulObserver(MatmulObserver* o);
  ~ScopedMatmulObserver();
  ScopedMatmulObserver(const ScopedMatmulObserver&) = delete;
  ScopedMatmulObserver& operator=(const ScopedMatmulObserver&) = delete;

 private:
  MatmulObserver* previous_;
};

}  // namespace temper::forward
