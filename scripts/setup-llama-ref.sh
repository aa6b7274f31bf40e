#!/usr/bin/env bash
# Installs the pinned ggml/llama.cpp reference (node-llama-cpp's prebuilt linux-x64 libraries and
# the llama.cpp source bundle for the headers) into DIR (default <repo>/.llama-ref). Idempotent.
# Used only by tests and benches that compare temper against ggml; never shipped or linked.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$repo/.llama-ref}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

bins="$dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
if [[ ! -f "$bins/libggml-base.so" ]] || ! cmp -s "$repo/tests/llama_ref/package.json" "$dir/package.json"; then
  cp "$repo/tests/llama_ref/package.json" "$dir/package.json"
  (cd "$dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund \
     node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1)
  # npm install may rewrite package.json (e.g. a caret range); keep the pinned copy.
  cp "$repo/tests/llama_ref/package.json" "$dir/package.json"
fi
[[ -f "$bins/libggml-base.so" ]] || { echo "setup-llama-ref: $bins/libggml-base.so missing after install" >&2; exit 1; }

if [[ ! -f "$dir/llama.cpp/ggml/include/ggml.h" ]]; then
  rm -rf "$dir/llama.cpp"
  git -c advice.detachedHead=false clone -q "$dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$dir/llama.cpp"
fi
echo "setup-llama-ref: ready in $dir (libraries: $bins)"
