#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install the Debian packages temper needs, install
# the independent llama.cpp reference used by the tests (npm, prebuilt CPU libraries, plus its
# CLI tools compiled from the release's own sources against them), and build Release into ./build.
#   bash scripts/setup.sh            # everything
#   SKIP_APT=1 bash scripts/setup.sh # packages already installed
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git
  libhdf5-dev hdf5-tools libopenblas-openmp-dev libcli11-dev libzstd-dev nlohmann-json3-dev
  libpcre2-dev libicu-dev libgtest-dev
  libdnnl-dev                                        # oneDNN: the trainer's bf16 matmul (AVX-512-BF16/AMX, chosen at run time)
  libopenmpi-dev openmpi-bin                         # OpenMPI: data-parallel training (mpirun -np N temper train)
  python3-numpy python3-h5py python3-torch
  python3-sentencepiece python3-tqdm python3-yaml  # llama.cpp's converter, the tests' reference
  golang-go                                          # Go's text/template renders Ollama templates in the tests
  chromium fonts-dejavu-core                         # headless screenshots and layout checks of the HTML reports
  qemu-user                                          # runs the portable build as older CPUs (Haswell, Nehalem) in the tests
  clang libclang-rt-14-dev libomp-dev                # libFuzzer harnesses and sanitizer runtimes (OpenMP for clang)
)
# node/npm run the llama.cpp reference; use the machine's own if it has one.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ -x scripts/setup-llama-ref.sh ] || [ -f scripts/setup-llama-ref.sh ]; then
  bash scripts/setup-llama-ref.sh
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built ./build/temper"
