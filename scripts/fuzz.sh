#!/usr/bin/env bash
# Fuzz temper's readers with the libFuzzer harnesses in tests/fuzz (clang, ASan + UBSan).
#
#   scripts/fuzz.sh [--time S | --runs N] [--jobs J] [harness...]
#
# Builds build-fuzz/ (or $TEMPER_FUZZ_DIR; CC=clang, -DTEMPER_FUZZ=ON), generates seed corpora
# from sample/ and the fixtures (build-fuzz/seeds/, again when temper changed), replays
# tests/fuzz/regressions/, then runs each harness (default: all) for S seconds (default 60) or
# N executions, J harnesses at a time (default 1; each is one process). New inputs go to
# build-fuzz/corpus/<harness>/ and persist between runs; findings are saved as
# build-fuzz/crashes/<harness>/{crash,leak,timeout,oom}-* (only this run's count).
# Limits: -rss_limit_mb=2048 (an input that makes a reader allocate more is a finding),
# -timeout=10 (an input that takes longer is a hang). Prints executions (this run and in total,
# kept in build-fuzz/stats/) and findings per harness; exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${TEMPER_FUZZ_DIR:-$ROOT/build-fuzz}  # another directory: several fuzzing checkouts side by side
FIXTURES=${TEMPER_FIXTURES:-$ROOT/../shared/fixtures}
export TEMPER_FIXTURES=$FIXTURES  # fuzz_train_data reads Qwen 3's tokenizer and template there
ALL=(safetensors torch_pickle gguf checkpoint config tokenizer_json tokenizer_config imatrix tasks train_data)
declare -A MAX_LEN=([safetensors]=32768 [torch_pickle]=16384 [gguf]=65536 [checkpoint]=131072 [config]=8192
                    [tokenizer_json]=32768 [tokenizer_config]=65536 [imatrix]=4096 [tasks]=8192 [train_data]=4096)
declare -A DICT=([safetensors]=json [torch_pickle]=pickle [gguf]=gguf [checkpoint]=gguf [config]=json [tokenizer_json]=json
                 [tokenizer_config]=json [imatrix]=gguf [tasks]=json [train_data]=json)

time_s=60 runs="" jobs=1 harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s=$2; runs=""; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${ALL[@]}")
for h in "${harnesses[@]}"; do
  [ -n "${MAX_LEN[$h]:-}" ] || { echo "fuzz.sh: unknown harness '$h' (have: ${ALL[*]})" >&2; exit 2; }
done

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTEMPER_FUZZ=ON \
  -DTEMPER_TESTS=OFF -DTEMPER_BENCH=OFF -DTEMPER_NATIVE=OFF "${launcher[@]}" >/dev/null
cmake --build "$OUT" -j"$(nproc)" --target temper $(printf 'fuzz_%s ' "${ALL[@]}") | grep -E 'error|warning' || true
[ -x "$OUT/fuzz/fuzz_${harnesses[0]}" ] || { echo "fuzz.sh: build failed" >&2; exit 1; }

# Reports from the instrumented temper while writing seeds are not fuzz findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/fuzz/lsan.supp:print_suppressions=0}
# Again after temper is rebuilt: the .h5 and GGUF seeds are its output, in its current format.
if [ ! -f "$OUT/seeds/.done" ] || [ "$OUT/temper" -nt "$OUT/seeds/.done" ]; then
  rm -rf "$OUT/seeds"
  ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3 tests/fuzz/make_seeds.py "$OUT/seeds" "$ROOT" "$FIXTURES" "$OUT/temper"
  touch "$OUT/seeds/.done"
fi

# One harness: replay the regressions, then fuzz. Writes $OUT/stats/<h>.last (executions).
fuzz_one() {
  local h=$1 bin=$OUT/fuzz/fuzz_$1 log=$OUT/logs/$1.log
  mkdir -p "$OUT/corpus/$h" "$OUT/crashes/$h" "$OUT/stats" "$OUT/logs"
  local common=(-rss_limit_mb=2048 -timeout=10 -max_len="${MAX_LEN[$h]}" -print_final_stats=1
                -artifact_prefix="$OUT/crashes/$h/")
  local reg=$ROOT/tests/fuzz/regressions/$h
  : > "$log"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    "$bin" "${common[@]}" "$reg"/* >> "$log" 2>&1 || true
  fi
  local limit=(-max_total_time="$time_s")
  [ -n "$runs" ] && limit=(-runs="$runs")
  "$bin" "${common[@]}" "${limit[@]}" -dict="$ROOT/tests/fuzz/${DICT[$h]}.dict" \
    "$OUT/corpus/$h" "$OUT/seeds/$h" >> "$log" 2>&1 || true
  { grep -o 'stat::number_of_executed_units: [0-9]*' "$log" || true; } | awk '{s += $2} END {print s + 0}' > "$OUT/stats/$h.last"
  cat "$OUT/stats/$h.last" >> "$OUT/stats/$h.history"
}

mkdir -p "$OUT"; touch "$OUT/.run_start"
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  echo "fuzzing $h (${runs:+$runs runs after the corpus}$([ -n "$runs" ] || echo "${time_s}s")) ..."
  fuzz_one "$h" &
done
wait

status=0
printf '\n%-18s %12s %14s %8s %9s %6s\n' harness executions total_execs crashes timeouts ooms
for h in "${harnesses[@]}"; do
  d=$OUT/crashes/$h
  crashes=$(find "$d" -maxdepth 1 -newer "$OUT/.run_start" \( -name 'crash-*' -o -name 'leak-*' -o -name 'deadly-*' \) | wc -l)
  timeouts=$(find "$d" -maxdepth 1 -newer "$OUT/.run_start" -name 'timeout-*' | wc -l)
  ooms=$(find "$d" -maxdepth 1 -newer "$OUT/.run_start" -name 'oom-*' | wc -l)
  # A sanitizer report that left no artifact (e.g. in the regression replay) still counts.
  if grep -qE '^==[0-9]+==ERROR|runtime error:' "$OUT/logs/$h.log" && [ "$crashes" -eq 0 ]; then crashes=1; fi
  total=$(awk '{s += $1} END {print s + 0}' "$OUT/stats/$h.history")
  printf '%-18s %12s %14s %8s %9s %6s\n' "$h" "$(cat "$OUT/stats/$h.last")" "$total" "$crashes" "$timeouts" "$ooms"
  if [ $((crashes + timeouts + ooms)) -gt 0 ]; then
    status=1
    echo "  findings in $d (log: $OUT/logs/$h.log)"
  fi
done
exit $status
