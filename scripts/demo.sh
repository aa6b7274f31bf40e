#!/usr/bin/env bash
# The main job on the bundled sample model: convert it to a temper checkpoint, then write the
# GGUFs a user would deploy (with an Ollama Modelfile), and show what they hold.
set -euo pipefail
cd "$(dirname "$0")/.."
T=./build/temper
mkdir -p out
$T convert sample/stories260K -o out/stories260K.h5 --force
for type in F32 Q8_0 Q4_K_M; do
  $T quantize out/stories260K.h5 -t "$type" -o "out/stories260K.$type.gguf" --modelfile --force
done
$T inspect out/stories260K.h5 | sed -n 1,6p  # sed reads to the end: no SIGPIPE under pipefail
# What did quantization cost? The full-precision checkpoint against the deployable files.
$T compare out/stories260K.h5 out/stories260K.Q8_0.gguf out/stories260K.Q4_K_M.gguf \
  --text sample/tinystories_sample.txt --ctx 128 --html out/compare.html
echo "demo: GGUFs and Modelfiles in out/ (import: ollama create stories -f out/stories260K.Q4_K_M.Modelfile)"
echo "demo: accuracy report in out/compare.html"
