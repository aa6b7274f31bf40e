#!/usr/bin/env bash
# The test suite, as CI (.ci/run) runs it after scripts/setup.sh (README "Run the tests"):
#   1. the Release build's tests (ctest -LE slow);
#   2. the unit tests again in build-asan/ (g++, -DTEMPER_SANITIZE=ON: ASan + UBSan);
#   3. every libFuzzer harness for FUZZ_SECONDS (default 20) each, seeds and regressions
#      included (scripts/fuzz.sh; clang, build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

ctest --test-dir build --output-on-failure -j2 -LE slow

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTEMPER_SANITIZE=ON -DTEMPER_BENCH=OFF \
  "${launcher[@]}" >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
ctest --test-dir build-asan --output-on-failure -j2 -L unit

bash scripts/fuzz.sh --time "${FUZZ_SECONDS:-20}"
