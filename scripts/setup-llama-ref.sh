#!/usr/bin/env bash
# Installs the pinned ggml/llama.cpp reference into DIR (default <repo>/.llama-ref). Idempotent.
#  - node-llama-cpp's prebuilt linux-x64 libraries (npm) and the llama.cpp release source it bundles;
#  - the llama.cpp command-line tools the tests compare against (llama-perplexity, llama-imatrix,
#    llama-bench, llama-quantize), compiled from that source into DIR/tools/bin.
# Used only by tests and benches that compare temper against llama.cpp; never shipped or linked.
#   SKIP_LLAMA_TOOLS=1 bash scripts/setup-llama-ref.sh   # libraries and source only
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

# The tools, compiled from the release's own sources (tools/<tool>/*.cpp) and linked against
# node-llama-cpp's prebuilt libraries of the same release (libllama-common, libllama, libggml):
# seconds instead of the ~30+ CPU-minutes a full source build of llama.cpp and ggml takes on a
# 2-core machine. Those libraries are the portable CPU build (no -march=native; ggml picks the
# best CPU backend variant at run time, libggml-cpu-*.so, which it looks for next to the
# executable, hence the links in tools/bin). Skipped when the stamp (release commit, compiler
# flags, tool list) matches, i.e. the same tools are already built.
if [[ "${SKIP_LLAMA_TOOLS:-0}" != 1 ]]; then
  src="$dir/llama.cpp"
  out="$dir/tools/bin"
  rel_bins="../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"  # from $out
  flags=(-O2 -DNDEBUG -std=c++17 -pthread -w -I"$src/common" -I"$src/include" -I"$src/ggml/include")
  libs=(-L"$bins" -l:libllama-common.so -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so
        "-Wl,-rpath,\$ORIGIN/$rel_bins")
  # tool name, then its sources
  # llama-perplexity's own main returns without draining llama.cpp's asynchronous logger, whose
  # last lines (the final estimate) are then sometimes lost on a busy machine (the logger is
  # leaked on purpose, llama.cpp issue 22142); this main drains it before exiting.
  mkdir -p "$dir/tools"
  cat >"$dir/tools/perplexity_main.cpp" <<'CPP'
#include "log.h"
int llama_perplexity(int argc, char ** argv);
int main(int argc, char ** argv) {
    const int rc = llama_perplexity(argc, argv);
    common_log_pause(common_log_main());  // waits until every queued line is written
    return rc;
}
CPP
  tools=("llama-perplexity $dir/tools/perplexity_main.cpp tools/perplexity/perplexity.cpp"
         "llama-imatrix tools/imatrix/imatrix.cpp"
         "llama-bench tools/llama-bench/main.cpp tools/llama-bench/llama-bench.cpp"
         "llama-quantize tools/quantize/main.cpp tools/quantize/quantize.cpp")
  stamp="$(git -C "$src" rev-parse HEAD) $(g++ -dumpfullversion) ${flags[*]} ${libs[*]} ${tools[*]} $(sha256sum <"$dir/tools/perplexity_main.cpp")"
  built=1
  for t in "${tools[@]}"; do [[ -x "$out/${t%% *}" ]] || built=0; done
  if [[ $built == 0 ]] || [[ "$(cat "$dir/tools/stamp" 2>/dev/null)" != "$stamp" ]]; then
    start=$SECONDS
    mkdir -p "$out"
    rm -f "$dir/tools/stamp"
    for lib in "$bins"/libggml-cpu-*.so; do ln -sfn "$rel_bins/$(basename "$lib")" "$out/$(basename "$lib")"; done
    build_one() {  # name src... : compile to a temporary name, rename when complete
      local name=$1; shift
      (cd "$src" && g++ "${flags[@]}" "$@" -o "$out/$name.tmp" "${libs[@]}") && mv "$out/$name.tmp" "$out/$name"
    }
    pids=()
    for t in "${tools[@]}"; do  # two at a time: -j2
      # shellcheck disable=SC2086
      build_one $t &
      pids+=($!)
      if (( ${#pids[@]} == 2 )); then wait "${pids[0]}" || exit 1; pids=("${pids[1]}"); fi
    done
    for p in "${pids[@]}"; do wait "$p" || exit 1; done
    "$out/llama-perplexity" --help >/dev/null 2>&1 || { echo "setup-llama-ref: $out/llama-perplexity does not run" >&2; exit 1; }
    echo "$stamp" >"$dir/tools/stamp"
    echo "setup-llama-ref: built ${#tools[@]} llama.cpp tools in $((SECONDS - start)) s"
  fi
fi
echo "setup-llama-ref: ready in $dir (libraries: $bins; tools: $dir/tools/bin)"
