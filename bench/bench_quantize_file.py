#!/usr/bin/python3
"""Benchmark: whole-file Q4_K_M quantization of a generated ~1B-parameter bf16 Llama-shaped
model: temper quantize vs llama.cpp's llama_model_quantize (libllama, same release as the
tests) on the same BF16 GGUF input, same thread count, same run; plus temper straight from the
Hugging Face folder. Prints time, ratio and peak RSS. Not a test: asserts nothing about time.

  bench/bench_quantize_file.py [--gb 2.2] [--threads 2] [--work DIR] [--build build]
Targets (issue #3): whole file >= 1.5x faster than llama.cpp; peak RSS <= 1 GB + largest tensor.
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


def run(cmd, env):
    """Runs cmd; returns (seconds, peak RSS bytes of this child)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.execvpe(cmd[0], cmd, env)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.2, help="bf16 checkpoint size (2.2 GB ~ 1.1B parameters)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/temper-bench-quantize")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    env = bench_env("bench_quantize_file", args.threads)
    temper = os.path.join(args.build, "temper")
    tool = os.path.join(args.build, "tests", "llama_quantize_tool")
    lib = os.path.join(ROOT, ".llama-ref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.5.0.so")

    src, total, largest, n_layer = cached_checkpoint(args.work, args.gb)
    bf16 = os.path.join(args.work, "model.bf16.gguf")
    if not os.path.exists(bf16):
        run([temper, "-q", "quantize", src, "-t", "BF16", "-o", bf16], env)
    outs = {k: os.path.join(args.work, f"{k}.Q4_K_M.gguf") for k in ("temper_gguf", "temper_hf", "llama")}
    for p in outs.values():
        if os.path.exists(p):
            os.remove(p)
    subprocess.run(["cat", bf16, *[os.path.join(src, f) for f in os.listdir(src)]], stdout=subprocess.DEVNULL)
    t_llama, rss_llama = run([tool, lib, bf16, outs["llama"], "15"] + [], dict(env, LLAMA_ARG_THREADS=str(args.threads)))
    t_ours, rss_ours = run([temper, "-q", "-t", str(args.threads), "quantize", bf16, "-t", "Q4_K_M", "-o", outs["temper_gguf"]], env)
    t_hf, rss_hf = run([temper, "-q", "-t", str(args.threads), "quantize", src, "-t", "Q4_K_M", "-o", outs["temper_hf"]], env)
    same = subprocess.run([sys.executable, os.path.join(ROOT, "tests/llama_ref/gguf_compare.py"), outs["temper_gguf"],
                           outs["llama"], "--ignore-keys", "general.name"], stdout=subprocess.DEVNULL).returncode == 0
    params = total // 2
    print(f"input: {params / 1e9:.2f}B parameters ({total / 1e9:.2f} GB bf16), {n_layer} layers, largest tensor {largest / 1e6:.0f} MB")
    print(f"llama_model_quantize (BF16 GGUF -> Q4_K_M): {t_llama:7.1f} s, peak RSS {rss_llama / 2**20:7.0f} MiB")
    print(f"temper quantize      (BF16 GGUF -> Q4_K_M): {t_ours:7.1f} s, peak RSS {rss_ours / 2**20:7.0f} MiB, "
          f"{t_llama / t_ours:.2f}x llama.cpp (target >= 1.5x); identical to llama.cpp's file: {same}")
    print(f"temper quantize      (HF folder -> Q4_K_M): {t_hf:7.1f} s, peak RSS {rss_hf / 2**20:7.0f} MiB, "
          f"{t_llama / t_hf:.2f}x llama.cpp")
    print(f"RSS target: <= {(2**30 + largest) / 2**20:.0f} MiB (1 GiB + largest tensor)")


if __name__ == "__main__":
    main()
