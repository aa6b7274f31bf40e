#!/usr/bin/python3
"""Benchmark: `temper convert` throughput on a generated multi-GB bf16 checkpoint, as a ratio to
reading the same bytes with `cat > /dev/null` in the same run, and temper's peak RSS.

  bench/bench_convert.py [--gb 2.5] [--work DIR] [--temper build/temper] [--repeats 6] [--json]

Cold: the page cache is dropped before every timed run (needs root and a writable
/proc/sys/vm/drop_caches), so both read the checkpoint from disk, as a conversion of a model
on disk does. This is the figure the target is about. Hot, for information: the checkpoint is
in the page cache; then `cat > /dev/null` copies memory at memory speed, which no program that
writes its output can approach, as the plain copy (`cat > file`, one more baseline) shows.
Runs are interleaved (cat, copy, convert, cat, ...) because this shared machine's speed drifts
by up to 3x within a minute; each round's ratio compares runs seconds apart, and the report
gives the median of those next to the ratio of the best times. The output is not fsynced (temper's
default); one more run with --sync shows what waiting for the disk costs.
Targets (issue #2): ratio >= 0.7 without compression; peak RSS < 1 GB + the largest tensor.
Not a test: it asserts nothing about time.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKENIZER_DIR = os.path.join(ROOT, "sample", "stories260K")


def make_checkpoint(path, target_bytes):
    """Llama-shaped bf16 checkpoint (hidden 2048, ffn 8192, GQA 32/8 heads), sharded like HF
    does (~1 GB shards + index), with as many layers as fit in target_bytes."""
    h, ff, heads, kv_heads, vocab = 2048, 8192, 32, 8, 512
    hd = h // heads
    per_layer = 2 * (h * h * 2 + 2 * h * kv_heads * hd + 3 * h * ff + 2 * h)
    n_layer = max(1, int(target_bytes // per_layer))
    os.makedirs(path, exist_ok=True)
    for fn in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(TOKENIZER_DIR, fn), path)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
           "intermediate_size": ff, "num_hidden_layers": n_layer, "num_attention_heads": heads,
           "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
    json.dump(cfg, open(os.path.join(path, "config.json"), "w"))
    tensors = [("model.embed_tokens.weight", [vocab, h]), ("model.norm.weight", [h])]
    for i in range(n_layer):
        p = f"model.layers.{i}."
        tensors += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
                    (p + "self_attn.q_proj.weight", [h, h]), (p + "self_attn.k_proj.weight", [kv_heads * hd, h]),
                    (p + "self_attn.v_proj.weight", [kv_heads * hd, h]), (p + "self_attn.o_proj.weight", [h, h]),
                    (p + "mlp.gate_proj.weight", [ff, h]), (p + "mlp.up_proj.weight", [ff, h]),
                    (p + "mlp.down_proj.weight", [h, ff])]
    rng = np.random.default_rng(0)
    # Random bf16 values of normal magnitude (~N(0, 0.02)); a 64 MiB pool, sliced per tensor.
    pool = (rng.standard_normal(32 << 20, dtype=np.float32) * 0.02).view(np.uint32)
    pool = ((pool + 0x7FFF + ((pool >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
    shards, cur, cur_bytes = [], [], 0
    for name, shape in tensors:
        n = 2 * int(np.prod(shape))
        if cur and cur_bytes + n > (1 << 30):
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append((name, shape, n))
        cur_bytes += n
    shards.append(cur)
    weight_map, largest, total = {}, 0, 0
    for si, shard in enumerate(shards):
        fn = f"model-{si + 1:05d}-of-{len(shards):05d}.safetensors"
        header, off = {}, 0
        for name, shape, n in shard:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fn
            largest = max(largest, n)
            total += n
        hb = json.dumps(header).encode()
        hb += b" " * (-len(hb) % 8)
        with open(os.path.join(path, fn), "wb") as f:
            f.write(struct.pack("<Q", len(hb)) + hb)
            for name, shape, n in shard:
                start = (hash(name) % (len(pool) // 2)) & ~1
                while n > 0:
                    k = min(n, len(pool) - start)
                    f.write(pool[start:start + k])
                    n -= k
                    start = 0
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(path, "model.safetensors.index.json"), "w"))
    return total, largest, n_layer


def cached_checkpoint(work, gb):
    """The generated checkpoint of `gb` GB in work/model, made once and reused by later runs
    (of any benchmark). Returns (folder, total bytes, largest tensor bytes, layers)."""
    src = os.path.join(work, "model")
    done = os.path.join(work, f"model-{gb}.done")
    if not os.path.exists(done):
        shutil.rmtree(src, ignore_errors=True)
        for f in os.listdir(work) if os.path.isdir(work) else []:
            if f.startswith("model-") and f.endswith(".done"):
                os.remove(os.path.join(work, f))  # another size's marker: its model is gone
        os.makedirs(work, exist_ok=True)
        print(f"generating a {gb:.1f} GB bf16 checkpoint in {src} ...", file=sys.stderr)
        json.dump(make_checkpoint(src, gb * 1e9), open(done, "w"))
    total, largest, n_layer = json.load(open(done))
    return src, total, largest, n_layer


def cpu_description():
    """The CPU a figure was measured on: model name, the SIMD extensions the kernels choose
    between, and the cores this process may use (/proc/cpuinfo)."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16",
                        "amx_bf16", "amx_int8") if f in flags]
    return f"{model}, {'/'.join(simd) or 'no AVX2'}, {len(os.sched_getaffinity(0))} cores"


def bench_env(name, threads=None):
    """The environment for the processes a benchmark times: without this machine's
    OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (they halve OpenBLAS speed), optionally with a thread
    count. Prints the CPU and what it did, as every benchmark must."""
    env = dict(os.environ)
    removed = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if env.pop(k, None) is not None]
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    print(f"{name}: {cpu_description()}; unset {removed or 'nothing'} for the timed processes"
          + (f"; {threads} threads" if threads else ""), file=sys.stderr)
    return env


def in_child(fn, *args):
    """fn(*args) in a forked child, waited for. Memory it allocates (a model generated in numpy)
    must not raise this process's RSS: Linux hands a process's resident size at fork to the
    child as its starting high-water mark and keeps it across exec, so every program timed later
    would report at least that as its ru_maxrss (measured: a `true` started by a Python holding
    800 MiB reports 810 MiB)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn(*args)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit(f"{getattr(fn, '__name__', fn)} failed in its child process")


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS in bytes of that process alone)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, **kw)
    _, status, usage = os.wait4(proc.pid, 0)  # reaps it ourselves, for its own rusage
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return seconds, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.5)
    ap.add_argument("--work", default="/tmp/temper-bench-convert")
    ap.add_argument("--temper", default=os.path.join(ROOT, "build", "temper"))
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = bench_env("bench_convert")

    src, total, largest, n_layer = cached_checkpoint(args.work, args.gb)
    shards = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".safetensors"))
    out = os.path.join(args.work, "out.h5")

    results = {"bytes": total, "largest_tensor_bytes": largest, "layers": n_layer, "cpus": os.cpu_count(),
               "repeats": args.repeats}
    modes = ["hot"] + (["cold"] if drop_caches() else [])

    def prepare(mode):
        """Page cache state before a timed run: the source cached (hot) or dropped (cold); no
        dirty pages of an earlier output left to throttle this run's writes."""
        if os.path.exists(out):
            os.remove(out)
        os.sync()
        if mode == "hot":
            subprocess.run(["cat", *shards], stdout=subprocess.DEVNULL, check=True)
        else:
            drop_caches()

    def convert(*extra):
        return timed([args.temper, *extra, "convert", src, "-o", out], env=env, stderr=subprocess.DEVNULL)

    for mode in modes:
        t_cat, t_copy, t_conv, rss = [], [], [], 0
        for _ in range(args.repeats):
            prepare(mode)
            t_cat.append(timed(["sh", "-c", 'cat "$@" > /dev/null', "cat", *shards])[0])
            # The least any converter that writes its output must spend: a plain copy of the
            # same bytes into one file on the output's file system.
            prepare(mode)
            t_copy.append(timed(["sh", "-c", 'cat "$@" > "$0"', out, *shards])[0])
            prepare(mode)
            seconds, peak = convert()
            t_conv.append(seconds)
            rss = max(rss, peak)
        prepare(mode)
        t_sync = convert("--sync")[0]  # for information: the same with fsync before the rename
        print(f"{mode}: seconds: cat {[round(t, 3) for t in t_cat]}, copy {[round(t, 3) for t in t_copy]}, "
              f"convert {[round(t, 3) for t in t_conv]}", file=sys.stderr)
        tc, tp, tv = min(t_cat), min(t_copy), min(t_conv)
        paired = sorted(c / v for c, v in zip(t_cat, t_conv))
        results[mode] = {"cat_seconds": t_cat, "convert_seconds": t_conv, "copy_seconds": t_copy,
                         "convert_sync_seconds": t_sync,
                         "ratio_paired_median": statistics.median(paired),
                         "ratio_paired_range": [paired[0], paired[-1]],
                         "ratio_best": tc / tv, "ratio_to_copy_best": tp / tv,
                         "cat_GBps_best": total / tc / 1e9, "copy_GBps_best": total / tp / 1e9,
                         "convert_GBps_best": total / tv / 1e9,
                         "convert_GBps_median": total / statistics.median(t_conv) / 1e9,
                         "convert_sync_GBps": total / t_sync / 1e9, "peak_rss_bytes": rss}
    os.remove(out)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"checkpoint: {total / 1e9:.2f} GB bf16, {n_layer} layers, largest tensor {largest / 1e6:.0f} MB")
        for mode in modes:
            r = results[mode]
            rss = r["peak_rss_bytes"]
            lo, hi = r["ratio_paired_range"]
            target = " (target >= 0.7)" if mode == "cold" else " (information only)"
            print(f"{mode:4s}: throughput ratio convert / cat: median of {args.repeats} rounds {r['ratio_paired_median']:.2f} "
                  f"(range {lo:.2f}-{hi:.2f}), best times {r['ratio_best']:.2f}{target}")
            print(f"      best GB/s: cat {r['cat_GBps_best']:.2f}, temper convert {r['convert_GBps_best']:.2f} "
                  f"(median {r['convert_GBps_median']:.2f}), plain copy {r['copy_GBps_best']:.2f} "
                  f"(convert / copy {r['ratio_to_copy_best']:.2f}); convert --sync {r['convert_sync_GBps']:.2f}")
            print(f"      temper peak RSS {rss / 2**20:.0f} MiB (target < {(2**30 + largest) / 2**20:.0f} MiB)")
        if "cold" not in modes:
            print("cold: not measured (dropping the page cache needs root); run as root for the target figure")

if __name__ == "__main__":
    main()
