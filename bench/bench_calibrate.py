#!/usr/bin/python3
"""Wall time and peak RSS of `temper quantize --calibrate` and of `--target-bpw` (at the
--imatrix file's bits per weight) against plain `temper imatrix` + `temper quantize --imatrix`
(the baseline, same model, type and text, same run) on a generated Llama-shaped bf16
checkpoint (random weights from scripts/tiny_models.py; speed and memory do not depend on the
values). Prints the CPU and the ratios to the baseline; never asserts. The timed processes run
without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (bench_convert.bench_env says which it unset).

    /usr/bin/python3 bench/bench_calibrate.py [--hidden 2048 --ffn 5632 --layers 22] [--tokens 2048]
        [--type Q4_K_M] [--temper build/temper] [--text FILE] [--no-bpw]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_models as T  # noqa: E402
from bench_convert import bench_env, in_child  # noqa: E402


def timed(cmd, env):
    """(seconds, peak RSS MiB, stdout) of one run of cmd."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: nothing can block the child
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        seconds = time.time() - t0
        if status != 0:
            err.seek(0)
            sys.exit("failed: " + " ".join(cmd) + "\n" + err.read().decode(errors="replace")[-2000:])
    return seconds, ru.ru_maxrss / 1024.0, out.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--type", default="Q4_K_M")
    ap.add_argument("--temper", default=os.path.join(ROOT, "build", "temper"))
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "fixtures", "text", "moby_dick.txt"))
    ap.add_argument("--no-bpw", action="store_true", help="skip --target-bpw (its cost grows with layers^2)")
    a = ap.parse_args()
    env = bench_env("bench_calibrate")
    d = tempfile.mkdtemp(prefix="bench_calib_")
    try:
        model = os.path.join(d, "model")
        in_child(T.write_wide_llama, model, a.hidden, a.ffn, a.layers, a.hidden // 64, max(1, a.hidden // 256))
        im = os.path.join(d, "im.gguf")
        t_im, rss_im, _ = timed([a.temper, "imatrix", model, "--text", a.text, "--chunks", str(max(1, a.tokens // 512)),
                                 "-o", im], env)
        t_q, rss_q, out = timed([a.temper, "quantize", model, "-t", a.type, "--imatrix", im, "-o",
                                 os.path.join(d, "a.gguf"), "--json"], env)
        bpw = json.loads(out)["bits_per_weight"]
        t_c, rss_c, _ = timed([a.temper, "quantize", model, "-t", a.type, "--calibrate", a.text, "--calib-tokens",
                               str(a.tokens), "-o", os.path.join(d, "b.gguf")], env)
        n = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors")) / 2
        base = t_im + t_q
        print("model: hidden %d, ffn %d, %d layers, %.0fM parameters (bf16); %s; %d calibration tokens; %d threads"
              % (a.hidden, a.ffn, a.layers, n / 1e6, a.type, a.tokens, os.cpu_count()))
        print("imatrix:               %7.1f s  peak RSS %6.0f MiB" % (t_im, rss_im))
        print("quantize --imatrix:    %7.1f s  peak RSS %6.0f MiB  (%.3f bits per weight)" % (t_q, rss_q, bpw))
        print("quantize --calibrate:  %7.1f s  peak RSS %6.0f MiB  (%.1fx imatrix + quantize)" % (t_c, rss_c, t_c / base))
        if not a.no_bpw:
            t_b, rss_b, _ = timed([a.temper, "quantize", model, "--target-bpw", "%.4f" % bpw, "--bpw-data", a.text,
                                   "--bpw-tokens", str(a.tokens), "-o", os.path.join(d, "c.gguf")], env)
            print("quantize --target-bpw: %7.1f s  peak RSS %6.0f MiB  (%.1fx imatrix + quantize)" % (t_b, rss_b, t_b / base))
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
