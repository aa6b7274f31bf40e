// Scalar reference of train::attention_backward (kernels.h), for tests: same arguments and
// contract, (query, head) and (key, kv head) pairs key by key with double accumulators.
#pragma once
#include <cstdint>

namespace temper::train {

void attention_backward_reference(float* dq,              // (n, NH*HD)
                                  float* dk, float* dv,   // (n, NKV*HD)
                                  const float* dout,      // (n, NH*HD)
                                  const float* q,         // (n, NH*HD)
                                  const float* k, const float* v,  // (n, NKV*HD)
                                  const float* out,       // (n, NH*HD)
                                  const float* lse,       // (n, NH)
                                  const int32_t* first_key,  // (n) or nullptr
                                  int64_t n, int NH, int NKV, int HD, int window, float scale);

}  // namespace temper::train
