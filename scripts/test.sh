#!/usr/bin/env bash
# The test suite, as CI (.ci/run) runs it after scripts/setup.sh (README "Run the tests"):
#   1. the Release build's tests (ctest -LE slow);
#   2. every libFuzzer harness (clang, ASan + UBSan; scripts/fuzz.sh, build-fuzz/) for
#      FUZZ_SECONDS (default 15) each, two at a time, after replaying tests/fuzz/regressions/.
#      The .h5 harness only replays its seeds and regressions here: the global-heap overflow
#      it used to find is unreachable now (README: Fuzzing, Untrusted files), but at 25-50
#      executions/s it has not had the million clean executions that would justify a CI
#      run; fuzz it by hand with `scripts/fuzz.sh checkpoint`.
#   --sanitize adds the unit tests built with g++ ASan + UBSan (build-asan/; about 12 more
#   minutes on 2 cores, which is why CI leaves it out).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
[ "${1:-}" = --sanitize ] && sanitize=1

ctest --test-dir build --output-on-failure -j2 -LE slow

bash scripts/fuzz.sh --time "${FUZZ_SECONDS:-15}" --jobs 2 \
  safetensors torch_pickle gguf config tokenizer_json tokenizer_config imatrix tasks train_data
bash scripts/fuzz.sh --runs 0 checkpoint

if [ $sanitize = 1 ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTEMPER_SANITIZE=ON -DTEMPER_BENCH=OFF \
    "${launcher[@]}" >/dev/null
  cmake --build build-asan -j"$(nproc)" >/dev/null
  ctest --test-dir build-asan --output-on-failure -j2 -L unit
fi
