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
$T inspect out/stories260K.h5 | head -8
$T quantize out/stories260K.h5 -t Q4_K_M -o out/plan.gguf --dry-run | tail -1
echo "demo: GGUFs and Modelfiles in out/ (import: ollama create stories -f out/stories260K.Q4_K_M.Modelfile)"
