#!/usr/bin/python3
"""Wall time and peak RSS of `temper quantize --calibrate` against plain `temper quantize --imatrix`
(same model, type and text) on a generated Llama-shaped bf16 checkpoint (random weights from
scripts/tiny_models.py; speed and memory do not depend on the values). A benchmark: prints,
never asserts.

    /usr/bin/python3 bench/bench_calibrate.py [--hidden 2048 --ffn 5632 --layers 22] [--tokens 2048]
        [--type Q4_K_M] [--temper build/temper] [--text FILE]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import tiny_models as T  # noqa: E402


def make_model(folder, hidden, ffn, layers):
    T.write_wide_llama(folder, hidden, ffn, layers, heads=hidden // 64, kv_heads=max(1, hidden // 256))


def timed(cmd):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, _, ru = os.wait4(p.pid, 0)
    if p.returncode not in (0, None) and ru is None:
        sys.exit("failed: " + " ".join(cmd))
    return time.time() - t0, ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--type", default="Q4_K_M")
    ap.add_argument("--temper", default=os.path.join(ROOT, "build", "temper"))
    ap.add_argument("--text", default=os.path.join(ROOT, "..", "shared", "fixtures", "text", "moby_dick.txt"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bench_calib_")
    try:
        model = os.path.join(d, "model")
        os.makedirs(model)
        make_model(model, a.hidden, a.ffn, a.layers)
        im = os.path.join(d, "im.gguf")
        t_im, rss_im = timed([a.temper, "imatrix", model, "--text", a.text, "--chunks", str(max(1, a.tokens // 512)), "-o", im])
        t_q, rss_q = timed([a.temper, "quantize", model, "-t", a.type, "--imatrix", im, "-o", os.path.join(d, "a.gguf")])
        t_c, rss_c = timed([a.temper, "quantize", model, "-t", a.type, "--calibrate", a.text, "--calib-tokens",
                            str(a.tokens), "-o", os.path.join(d, "b.gguf")])
        n = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors")) / 2
        print("model: hidden %d, ffn %d, %d layers, %.0fM parameters (bf16); %s; %d calibration tokens; %d threads"
              % (a.hidden, a.ffn, a.layers, n / 1e6, a.type, a.tokens, os.cpu_count()))
        print("imatrix:               %7.1f s  peak RSS %6.0f MiB" % (t_im, rss_im))
        print("quantize --imatrix:    %7.1f s  peak RSS %6.0f MiB" % (t_q, rss_q))
        print("quantize --calibrate:  %7.1f s  peak RSS %6.0f MiB  (%.1fx imatrix + quantize)"
              % (t_c, rss_c, t_c / (t_im + t_q)))
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
