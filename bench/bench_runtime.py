#!/usr/bin/python3
"""Benchmark (issue #4): prompt-processing speed of temper's runtime vs llama.cpp on the same
GGUFs (Q8_0, Q4_K_M of a generated ~1.2B-parameter bf16 Llama-shaped model), same threads, one
512-token batch; temper's peak RSS; and `temper compare` wall time for base + 3 candidates.

  bench/bench_runtime.py [--gb 2.5] [--work DIR] [--threads 2] [--build build]
  bench/bench_runtime.py --decode [--decode-gb 0.1] [--threads 2]   (decode only, issue #12)

--decode: greedy decode tokens/s, `temper generate` vs llama.cpp (bench/llama_decode_speed.mjs),
same GGUF and threads, for F32, BF16, Q8_0, Q4_K_M, Q6_K of a generated Llama-shaped checkpoint
(hidden 2048, ffn 8192; 0.1 GB = one layer, ~60M parameters). temper: 128 new tokens minus a
1-token run (cancels load and prompt), best of 2; llama.cpp: best of 2 timed runs after a warm-up.

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


def temper_generate_seconds(temper, threads, gguf, n, env):
    secs, _, out = run([temper, "-q", "-t", str(threads), "generate", gguf, "-p", "", "-n", str(n), "--json"],
                       env, capture=True)
    return secs, len(json.loads(out)["new_ids"])


def decode_speed(args, env, temper, gguf, n_new=128):
    """Decode tokens/s of temper and llama.cpp on gguf; temper's load cancelled by a 1-token run."""
    subprocess.run(["cat", gguf], stdout=subprocess.DEVNULL, check=True)  # page cache warm for both
    ours = 0.0
    for _ in range(2):
        t1, _ = temper_generate_seconds(temper, args.threads, gguf, 1, env)
        tn, got = temper_generate_seconds(temper, args.threads, gguf, 1 + n_new, env)
        ours = max(ours, (got - 1) / (tn - t1))
    _, _, out = run(["node", os.path.join(HERE, "llama_decode_speed.mjs"), gguf, str(n_new), str(args.threads), "2"],
                    env, capture=True)
    ref = json.loads(out)
    theirs = max(k / s for k, s in zip(ref["n_new"], ref["seconds"]))
    return ours, theirs


def decode_main(args, env, temper):
    src, total, _, n_layer = cached_checkpoint(os.path.join(args.work, "decode"), args.decode_gb)
    print(f"decode: {total // 2 / 1e6:.0f}M-parameter Llama-shaped model ({n_layer} layers, hidden 2048, "
          f"ffn 8192, vocab 512, random bf16 weights), {args.threads} threads, greedy, 128 new tokens")
    for t in ("F32", "BF16", "Q8_0", "Q4_K_M", "Q6_K"):
        gguf = os.path.join(args.work, "decode", f"decode.{t}.gguf")
        if not os.path.exists(gguf):
            run([temper, "-q", "-t", str(args.threads), "quantize", src, "-t", t, "-o", gguf], env)
        ours, theirs = decode_speed(args, env, temper, gguf)
        print(f"{t:6s} ({os.path.getsize(gguf) / 2**20:.0f} MiB): temper {ours:.1f} tok/s, llama.cpp {theirs:.1f} tok/s, "
              f"ratio {ours / theirs:.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.5, help="bf16 checkpoint size (2.5 GB ~ 1.2B parameters)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/temper-bench-convert")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--decode", action="store_true", help="only the decode comparison (issue #12)")
    ap.add_argument("--decode-gb", type=float, default=0.1, help="bf16 checkpoint size for --decode")
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
