#!/usr/bin/python3
"""Benchmark (issue #4): prompt-processing speed of temper's runtime vs llama.cpp on the same
GGUFs (Q8_0, Q4_K_M of a generated ~1.2B-parameter bf16 Llama-shaped model), same threads, one
512-token batch; temper's peak RSS; and `temper compare` wall time for base + 3 candidates.

  bench/bench_runtime.py [--gb 2.5] [--work DIR] [--threads 2] [--build build]
  bench/bench_runtime.py --decode [--decode-gb 0.1] [--threads 2] [--loaded]   (issue #12)

--decode: greedy decode tokens/s, `temper generate` vs llama.cpp's `llama-bench` (tg128, built in
.llama-ref/tools/bin), same GGUF, for F32, BF16, Q8_0, Q4_K_M, Q6_K of a generated Llama-shaped
checkpoint (hidden 2048, ffn 8192; 0.1 GB = one layer, ~60M parameters). Two figures per type:
  - wall tok/s at --threads: temper 129 new tokens minus a 1-token run (cancels load and prompt),
    best of 2; llama-bench's tg128 (its own warm-up, mean of 2 repetitions);
  - tok/s per CPU-second at 1 thread (the figure that survives a shared machine): the child's
    user+system CPU time of 129 tokens minus that of 1, for both programs alike.
--loaded: the same with one competing CPU-bound process running throughout (a busy loop), as a
user running temper next to another job. The load average is printed with every figure.

temper has no prompt-only command, so its speed is measured through `temper eval --json`
(whose "seconds" include the model load and tokenization): one run on a text of 511 tokens (one
window of 512 positions) and one on 15 tokens (16 positions); speed = extra positions / extra
seconds, which cancels the load. llama.cpp: bench/llama_prompt_speed.mjs, load excluded, best of
2 timed runs after a warm-up. Targets: speed >= 0.5x llama.cpp; peak RSS <= GGUF size + 1 GiB.
Not a test: asserts nothing about time.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_convert import bench_env, cached_checkpoint  # noqa: E402

STORIES = os.path.join(ROOT, "sample", "stories260K")
# The shared fixtures beside the checkout (as the tests find them), or TEMPER_FIXTURES.
FIXTURES = os.environ.get("TEMPER_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
TEXTS = os.path.join(FIXTURES, "text")


def run(cmd, env, capture=False):
    """Runs cmd; returns (seconds, peak RSS bytes of this child, stdout or None)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
    out = p.stdout.read() if capture else None
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = status
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024, out


def temper_eval(temper, threads, model, text, env):
    secs, rss, out = run([temper, "-q", "-t", str(threads), "eval", model, "--text", text, "--ctx", "512", "--json"],
                         env, capture=True)
    return json.loads(out), secs, rss


def text_of_tokens(temper, path, source, want, env):
    """Writes to path the longest prefix of source whose stories260K tokenization has <= want
    tokens (the generated model uses the stories260K tokenizer); returns its token count."""
    lo, hi = 1, len(source)
    best = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        open(path, "w").write(source[:mid])
        n = temper_eval(temper, 1, STORIES, path, env)[0]["n_text_tokens"]
        if n <= want:
            lo, best = mid + 1, mid
        else:
            hi = mid - 1
    open(path, "w").write(source[:best])
    return temper_eval(temper, 1, STORIES, path, env)[0]["n_text_tokens"]


def prompt_speed(args, env, temper, gguf, long_text, short_text):
    subprocess.run(["cat", gguf], stdout=subprocess.DEVNULL, check=True)  # page cache warm for both
    short, t_short, _ = temper_eval(temper, args.threads, gguf, short_text, env)
    long, t_long, rss = temper_eval(temper, args.threads, gguf, long_text, env)
    positions = (long["n_text_tokens"] + 1) - (short["n_text_tokens"] + 1)
    ours = positions / (long["seconds"] - short["seconds"])
    n = long["n_text_tokens"] + 1
    _, _, out = run(["node", os.path.join(HERE, "llama_prompt_speed.mjs"), gguf, str(n), str(args.threads), "2"],
                    env, capture=True)
    ref = json.loads(out)
    theirs = n / min(ref["seconds"])
    return {"temper_tps": ours, "llama_tps": theirs, "ratio": ours / theirs, "temper_peak_rss": rss,
            "temper_eval_seconds": [short["seconds"], long["seconds"]], "llama_seconds": ref["seconds"],
            "positions": n, "gguf_bytes": os.path.getsize(gguf)}


def compare_wall(args, env, temper):
    """Wall time of `temper compare` on stories260K (HF folder base, F32/Q8_0/Q4_K_M GGUFs) over
    ~20k tokens cut from the fixture texts."""
    d = os.path.join(args.work, "stories260K")
    os.makedirs(d, exist_ok=True)
    cands = []
    for t in ("F32", "Q8_0", "Q4_K_M"):
        p = os.path.join(d, f"stories260K.{t}.gguf")
        if not os.path.exists(p):
            run([temper, "-q", "quantize", STORIES, "-t", t, "-o", p], env)
        cands.append(p)
    text = os.path.join(d, "text20k.txt")
    if not os.path.exists(text):
        # ~1.7 characters per token with this tokenizer: ~15 kB of each fixture text.
        parts = [open(os.path.join(TEXTS, f), encoding="utf-8").read()[:15000] for f in sorted(os.listdir(TEXTS))
                 if f.endswith(".txt")]
        open(text, "w", encoding="utf-8").write("\n\n".join(parts))
    secs, rss, out = run([temper, "-q", "-t", str(args.threads), "compare", STORIES, *cands, "--text", text, "--json"],
                         env, capture=True)
    res = json.loads(out)
    return secs, rss, res.get("n_text_tokens", res.get("base", {}).get("n_text_tokens")), cands


LLAMA_BENCH = os.path.join(ROOT, ".llama-ref", "tools", "bin", "llama-bench")


def run_cpu(cmd, env):
    """Runs cmd; returns (wall seconds, child CPU seconds, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, out


def temper_generate(temper, threads, gguf, n, env):
    wall, cpu, out = run_cpu([temper, "-q", "-t", str(threads), "generate", gguf, "-p", "", "-n", str(n), "--json"],
                             env)
    got = len(json.loads(out)["new_ids"])
    if got != n:
        raise SystemExit(f"temper generate made {got} tokens, not {n} (end of text?): {gguf}")
    return wall, cpu


def llama_bench(gguf, threads, n, reps, env):
    """llama-bench tg<n>: (mean tok/s, child CPU seconds)."""
    _, cpu, out = run_cpu([LLAMA_BENCH, "-m", gguf, "-p", "0", "-n", str(n), "-t", str(threads), "-r", str(reps),
                           "-o", "json"], env)
    return json.loads(out)[0]["avg_ts"], cpu


def load_average():
    return "%.1f" % os.getloadavg()[0]


def decode_speed(args, env, temper, gguf, n_new=128):
    """Wall tok/s at args.threads and CPU-time tok/s at 1 thread, temper and llama.cpp."""
    subprocess.run(["cat", gguf], stdout=subprocess.DEVNULL, check=True)  # page cache warm for both
    r = {"load_before": load_average()}
    ours = 0.0
    for _ in range(2):
        w1, _ = temper_generate(temper, args.threads, gguf, 1, env)
        wn, _ = temper_generate(temper, args.threads, gguf, 1 + n_new, env)
        ours = max(ours, n_new / (wn - w1))
    r["temper_wall"] = ours
    r["llama_wall"] = llama_bench(gguf, args.threads, n_new, 2, env)[0]
    # CPU time at 1 thread: best of 2 differences for each program.
    r["temper_cpu"] = max(n_new / (temper_generate(temper, 1, gguf, 1 + n_new, env)[1] -
                                   temper_generate(temper, 1, gguf, 1, env)[1]) for _ in range(2))
    r["llama_cpu"] = max(n_new / (llama_bench(gguf, 1, 1 + n_new, 1, env)[1] - llama_bench(gguf, 1, 1, 1, env)[1])
                         for _ in range(2))
    r["load_after"] = load_average()
    return r


def decode_main(args, env, temper):
    src, total, _, n_layer = cached_checkpoint(os.path.join(args.work, "decode"), args.decode_gb)
    if not os.path.exists(LLAMA_BENCH):
        raise SystemExit(f"{LLAMA_BENCH} missing: run scripts/setup-llama-ref.sh")
    print(f"decode: {total // 2 / 1e6:.0f}M-parameter Llama-shaped model ({n_layer} layers, hidden 2048, "
          f"ffn 8192, vocab 512, random bf16 weights), greedy, 128 new tokens; wall at {args.threads} threads, "
          f"CPU time at 1 thread; {os.cpu_count()} CPUs")
    hog = None
    if args.loaded:
        hog = subprocess.Popen(["/usr/bin/python3", "-c", "while True: pass"])
        print("loaded: one competing CPU-bound process (a Python busy loop) runs throughout")
    try:
        for t in ("F32", "BF16", "Q8_0", "Q4_K_M", "Q6_K"):
            gguf = os.path.join(args.work, "decode", f"decode.{t}.gguf")
            if not os.path.exists(gguf):
                run([temper, "-q", "-t", str(args.threads), "quantize", src, "-t", t, "-o", gguf], env)
            r = decode_speed(args, env, temper, gguf)
            print(f"{t:6s} ({os.path.getsize(gguf) / 2**20:3.0f} MiB): {args.threads} threads wall: temper "
                  f"{r['temper_wall']:6.1f}, llama.cpp {r['llama_wall']:6.1f} tok/s, ratio "
                  f"{r['temper_wall'] / r['llama_wall']:.2f}x | 1 thread per CPU-s: temper {r['temper_cpu']:6.1f}, "
                  f"llama.cpp {r['llama_cpu']:6.1f}, ratio {r['temper_cpu'] / r['llama_cpu']:.2f}x | load "
                  f"{r['load_before']}->{r['load_after']}", flush=True)
    finally:
        if hog:
            hog.kill()
            hog.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.5, help="bf16 checkpoint size (2.5 GB ~ 1.2B parameters)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/temper-bench-convert")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--decode", action="store_true", help="only the decode comparison (issue #12)")
    ap.add_argument("--decode-gb", type=float, default=0.1, help="bf16 checkpoint size for --decode")
    ap.add_argument("--loaded", action="store_true", help="--decode with one competing CPU-bound process")
    args = ap.parse_args()
    env = bench_env("bench_runtime", args.threads)
    temper = os.path.join(args.build, "temper")
    if args.decode:
        decode_main(args, env, temper)
        return

    src, total, largest, n_layer = cached_checkpoint(args.work, args.gb)
    ggufs = {}
    for t in ("Q8_0", "Q4_K_M"):
        ggufs[t] = os.path.join(args.work, f"runtime.{t}.gguf")
        if not os.path.exists(ggufs[t]):
            print(f"quantizing to {t} ...", file=sys.stderr)
            run([temper, "-q", "-t", str(args.threads), "quantize", src, "-t", t, "-o", ggufs[t]], env)

    story = open(os.path.join(TEXTS, "tinystories_sample.txt"), encoding="utf-8").read()
    long_text, short_text = os.path.join(args.work, "prompt511.txt"), os.path.join(args.work, "prompt15.txt")
    n_long = text_of_tokens(temper, long_text, story, 511, env)
    n_short = text_of_tokens(temper, short_text, story, 15, env)

    print(f"model: {total // 2 / 1e9:.2f}B parameters, {n_layer} layers, hidden 2048, vocab 512 (random bf16 weights)")
    print(f"prompt: {n_long + 1} positions in one batch (BOS + {n_long} text tokens); temper's load time cancelled "
          f"by a {n_short + 1}-position run; llama.cpp: best of 2 after a warm-up, load excluded")
    for t, gguf in ggufs.items():
        r = prompt_speed(args, env, temper, gguf, long_text, short_text)
        limit = r["gguf_bytes"] + 2**30
        print(f"{t:6s} ({r['gguf_bytes'] / 2**20:.0f} MiB): temper {r['temper_tps']:.1f} tok/s, llama.cpp "
              f"{r['llama_tps']:.1f} tok/s, ratio {r['ratio']:.2f}x (target >= 0.5x); temper peak RSS "
              f"{r['temper_peak_rss'] / 2**20:.0f} MiB (target <= {limit / 2**20:.0f} MiB)")
        print(f"        raw: temper eval seconds (short / long prompt) "
              f"{r['temper_eval_seconds'][0]:.2f} / {r['temper_eval_seconds'][1]:.2f}; llama.cpp seconds "
              f"{', '.join(f'{s:.2f}' for s in r['llama_seconds'])}")

    secs, rss, n_tok, cands = compare_wall(args, env, temper)
    print(f"temper compare, stories260K (HF folder base + F32, Q8_0, Q4_K_M GGUF candidates), {n_tok} text tokens, "
          f"ctx 512: {secs:.1f} s wall, peak RSS {rss / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
