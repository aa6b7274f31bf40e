#!/usr/bin/env bash
# Runs llama.cpp's own HF -> GGUF converter (convert_hf_to_gguf.py of the llama.cpp release
# bundled with node-llama-cpp, cloned into .llama-ref/llama.cpp by scripts/setup-llama-ref.sh)
# with Debian's Python: the independent reference for temper's GGUF export.
#   convert_reference.sh HF_DIR OUT.gguf [f32|f16|bf16|q8_0] [--no-vocab]
# --no-vocab skips the vocabulary of Gemma 4 / Qwen3-MoE (see convert_no_vocab.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ref="${TEMPER_LLAMA_REF_DIR:-$here/../../.llama-ref}"
[ -f "$ref/llama.cpp/convert_hf_to_gguf.py" ] || { echo "convert_reference.sh: run scripts/setup-llama-ref.sh first" >&2; exit 2; }
export PYTHONPATH="$here/pyshim"
if [ "${4:-}" = "--no-vocab" ]; then
  exec /usr/bin/python3 "$here/convert_no_vocab.py" "$ref/llama.cpp" "$1" --outfile "$2" --outtype "${3:-f32}"
fi
exec /usr/bin/python3 "$ref/llama.cpp/convert_hf_to_gguf.py" "$1" --outfile "$2" --outtype "${3:-f32}"
