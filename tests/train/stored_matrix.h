// A random (rows, cols) weight matrix stored as any DType, as a base weight is stored, with its
// exact dequantised values in double: the kernel tests' input and their references' truth.
#pragma once
#include <cstdint>
#include <vector>

#include "forward/weights.h"
#include "grad_check.h"
#include "quant/quant.h"

namespace temper::train::test {

struct StoredMatrix {
  std::vector<uint8_t> bytes;
  forward::Matrix m;
  std::vector<double> values;
  StoredMatrix(DType type, int64_t rows, int64_t cols, uint32_t seed) {
    const auto f = to_f32(randn_f32(size_t(rows * cols), seed, 0.5));
    const size_t rb = quant::row_bytes(type, cols);
    bytes.resize(rb * size_t(rows));
    quant::quantize_rows(type, f.data(), bytes.data(), rows, cols, nullptr);
    m = {bytes.data(), type, rows, cols, rb};
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      quant::dequantize_row(type, m.row(r), row.data(), cols);
      values.insert(values.end(), row.begin(), row.end());
    }
  }
};

}  // namespace temper::train::test
