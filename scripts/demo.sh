#!/usr/bin/env bash
# The main job on the bundled sample model: convert it, then show what the checkpoint holds.
set -euo pipefail
cd "$(dirname "$0")/.."
T=./build/temper
mkdir -p out
$T convert sample/stories260K -o out/stories260K.h5 --force
$T inspect out/stories260K.h5 | head -20
