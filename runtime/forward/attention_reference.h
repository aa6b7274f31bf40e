// Scalar reference of forward::attention_forward_masked (layers.h), for tests: same
// arguments, same contract, (token, head) pairs key by key with double accumulators.
#pragma once
#include <cstdint>

namespace temper::forward {

void attention_forward_reference(float* out,                // (T, NH*HD)
                                 float* lse,                // (T, NH) or nullptr
                                 const float* q,            // (T, NH*HD)
                                 const float* k_cache,      // (>= P0+T, NKV*HD)
                                 const float* v_cache,      // (>= P0+T, NKV*HD)
                                 const int32_t* first_key,  // (T) or nullptr
                                 int64_t n_tokens, int64_t pos0, int n_head, int n_head_kv,
                                 int head_dim, int window, float scale);

}  // namespace temper::forward
