#!/usr/bin/python3
"""Benchmark (issue #11): `temper imatrix` tokens/s vs llama.cpp's `llama-imatrix` (built in
.llama-ref/tools/bin) on the same F32 GGUF and text, same threads, ctx 512.

  bench/bench_imatrix.py [--gb 0.1] [--work DIR] [--threads 2] [--build build] [--chunks 2,6]

The GGUF is temper's F32 file of the generated Llama-shaped bf16 checkpoint bench_convert makes
(0.1 GB = one layer of hidden 2048, ffn 8192). The text is moby_dick.txt from the shared fixtures.
Each program runs twice, with --chunks A and --chunks B; speed = (B - A) * 512 tokens / extra
seconds, which cancels model loading and tokenization. llama-imatrix runs as in the tests (f32 KV
cache, no flash attention, --no-ppl). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the timed
processes (bench_env). Not a test: asserts nothing about time.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_convert import bench_env, cached_checkpoint  # noqa: E402

FIXTURES = os.environ.get("TEMPER_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
TEXT = os.path.join(FIXTURES, "text", "moby_dick.txt")


def seconds(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def load_average():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=0.1)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench_work"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--chunks", default="2,6")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.chunks.split(","))
    temper = os.path.join(a.build, "temper")
    llama = os.path.join(ROOT, ".llama-ref", "tools", "bin", "llama-imatrix")
    env = bench_env("bench_imatrix", a.threads)
    src, *_ = cached_checkpoint(a.work, a.gb)
    gguf = os.path.join(a.work, f"imatrix-{a.gb}.f32.gguf")
    if not os.path.exists(gguf):
        subprocess.run([temper, "-q", "quantize", src, "-t", "F32", "-o", gguf], check=True)
    out = os.path.join(a.work, "imatrix-out")
    os.makedirs(out, exist_ok=True)

    def temper_cmd(n):
        return [temper, "-q", "-t", str(a.threads), "imatrix", gguf, "--text", TEXT, "--ctx", "512",
                "--chunks", str(n), "-o", os.path.join(out, "t.gguf"), "--force"]

    def llama_cmd(n):
        return [llama, "-m", gguf, "-f", TEXT, "-c", "512", "--chunks", str(n), "-o", os.path.join(out, "l.gguf"),
                "-t", str(a.threads), "-fa", "off", "-ctk", "f32", "-ctv", "f32", "--no-ppl"]

    rates = {}
    for name, cmd in (("temper", temper_cmd), ("llama-imatrix", llama_cmd)):
        t_lo, t_hi = seconds(cmd(lo), env), seconds(cmd(hi), env)
        rates[name] = (hi - lo) * 512 / max(t_hi - t_lo, 1e-9)
        print(f"{name}: {lo} chunks {t_lo:.2f} s, {hi} chunks {t_hi:.2f} s -> {rates[name]:.0f} tokens/s "
              f"(load average {load_average():.1f})")
    print(f"temper / llama-imatrix = {rates['temper'] / rates['llama-imatrix']:.2f}x at {a.threads} threads")


if __name__ == "__main__":
    main()
