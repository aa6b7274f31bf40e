#!/usr/bin/python3
"""Benchmark (issue #9): LoRA training speed and peak RSS of `temper train` vs a PyTorch 1.13
LoRA loop written here, same model, same tokens, same thread count, in the same run.

  bench/bench_train.py [--quick] [--work DIR] [--threads 2] [--steps 4] [--build build]
                       [--models llama-0.5b,llama-1b,gemma4-e2b] [--no-qlora] [--no-cpu]
                       [--torch-modes fp32,bf16] [--temper-precisions bf16,f32] [--json]

Models (random weights in HF layout, bf16, generated here with scripts/tiny_models.py's helpers,
stories260K tokenizer, so vocab 512 and almost every parameter is in the layers):
  llama-0.5b  hidden 1536, ffn 4096, 12/4 heads (hd 128), 20 layers  (~0.5B)
  llama-1b    hidden 2048, ffn 8192, 32/8 heads (hd 64), 16 layers   (~1.0B, Llama 3.2 1B's body)
  gemma4-e2b  E2B's widths (hidden 1536, ffn 6144, double-wide on KV-shared layers, 8 x 1 heads,
              hd 256/512, PLE 256, window 512) with 8 of its 35 layers (6 owning + 2 sharing KV)
--quick: a ~2M-parameter Llama and seq 64, for a smoke run (the ctest entry, label `slow`).

Training: seq 512 (.txt chunks of the fixture text, every token trained), batch 1, rank 16,
alpha 32, targets q,k,v,o,gate,up,down. temper: `temper train --json --precision P` for each P
of --temper-precisions (default bf16,f32; bf16 says f32 where the CPU lacks native bf16), the
median of the per-step tokens/s after the first step. PyTorch: tests/forward/torch_ref.py's forward (plain
tensor ops, eager attention as HF's) with LoRA around every projection, torch.optim.AdamW, in
  - fp32: base weights in float32;
  - bf16: base weights kept in bfloat16 and torch.autocast("cpu", bfloat16) (its best mode here;
    adapters and optimizer in float32),
median of the per-step wall tokens/s after the first step, on the same token ids (the text
tokenised with the model's tokenizer.model). Peak RSS: the child's ru_maxrss (wait4).
QLoRA: temper on Q8_0 and Q4_K_M GGUFs made with `temper quantize` from the same checkpoint.
Peak: the best sgemm GFLOP/s here (torch fp32 and bf16 matmul, numpy's BLAS; 2048^3, best of 3),
and each run's useful GFLOP/s = 4 * (layer parameters) * tokens/s, counted as LoRA training
needs it: forward 2 + input-gradient 2 FLOPs per base parameter per token (no base-weight
gradient); temper's recomputed forward (2 more) is not counted as useful.
PyTorch loads its weights one tensor at a time (tests/forward/torch_ref.py's
safetensors_entries), so its peak RSS holds the model, not a copy of the file as well.
CPU time: at 1 thread, CPU-seconds per token (temper: user+sys of an N-step run minus a 1-step
run; PyTorch: process_time per step), the figure that survives a shared machine.
Timed processes run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (printed).
Not a test: asserts nothing about time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "forward"))
import bench_convert  # noqa: E402  (HERE is on sys.path: the script's own folder)
FIXTURES = os.environ.get("TEMPER_FIXTURES") or os.path.join(os.path.dirname(ROOT), "shared", "fixtures")
TEXT = os.path.join(FIXTURES, "text", "tinystories_sample.txt")
TARGETS = "q,k,v,o,gate,up,down"
RANK, ALPHA = 16, 32.0


def model_config(name):
    import tiny_models as T
    if name.startswith("llama") or name == "quick":
        c = T.llama_config(tied=True)
        dims = {"quick": (256, 704, 4, 2, 2), "llama-0.5b": (1536, 4096, 12, 4, 20),
                "llama-1b": (2048, 8192, 32, 8, 16)}[name]
        h, ff, nh, nkv, L = dims
        c.update(hidden_size=h, intermediate_size=ff, num_attention_heads=nh, num_key_value_heads=nkv,
                 num_hidden_layers=L, max_position_embeddings=4096)
        return c
    c = T.gemma4_e2b_config()
    s, f = "sliding_attention", "full_attention"
    c["text_config"].update(hidden_size=1536, intermediate_size=6144, num_attention_heads=8, num_key_value_heads=1,
                            head_dim=256, global_head_dim=512, hidden_size_per_layer_input=256,
                            sliding_window=512, num_hidden_layers=8, num_kv_shared_layers=2,
                            layer_types=[s, s, s, s, s, f, s, f], max_position_embeddings=4096)
    return c


def make_model(work, name):
    """HF folder of random bf16 weights (cached under work)."""
    import tiny_models as T
    folder = os.path.join(work, name)
    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    os.makedirs(folder, exist_ok=True)
    c = model_config(name)

    def write_weights():  # in a child: the weights held in numpy must not count in any RSS measured
        w = T.Weights(0, 1.0)
        if name.startswith("gemma"):
            T.gemma4_weights(w, c)
        else:
            T.llama_like(w, c)
        T.write_checkpoint(folder, w.t, "bf16", sharded=False)
    bench_convert.in_child(write_weights)
    c["torch_dtype"] = "bfloat16"
    for fn in T.TOKENIZER_FILES:
        subprocess.run(["cp", os.path.join(T.TOKENIZER_DIR, fn), folder], check=True)
    json.dump(c, open(os.path.join(folder, "config.json"), "w"), indent=1)  # last: marks the folder complete
    return folder


BASE_ENV = None  # bench_convert.bench_env's: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (said once)


def bench_env(threads):
    global BASE_ENV
    if BASE_ENV is None:
        BASE_ENV = bench_convert.bench_env("bench_train")
    return dict(BASE_ENV, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))


def run(cmd, env):
    """-> (wall s, stdout text)."""
    wall, _, _, out = run_usage(cmd, env)
    return wall, out


def run_usage(cmd, env):
    """-> (wall s, user+sys CPU s of the child, its peak RSS bytes, stdout text)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out.decode())


def is_layer_projection(name):
    """A weight the trained projections multiply (not embeddings, norms, PLE or towers)."""
    return "proj" in name and not any(s in name for s in ("per_layer", "vision", "audio"))


def layer_params(model):
    """Parameters the trained projections multiply (everything but embeddings/norms)."""
    hdr = []
    for fn in os.listdir(model):
        if fn.endswith(".safetensors"):
            with open(os.path.join(model, fn), "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                hdr.append(json.loads(f.read(n)))
    return sum(int(np.prod(v["shape"])) for h in hdr for k, v in h.items()
               if k != "__metadata__" and is_layer_projection(k))


def temper_train(args, model, data, threads, steps, precision="auto"):
    cmd = [args.temper, "-q", "-t", str(threads), "train", model, "--data", data, "-o",
           os.path.join(args.work, "bench_adapter.h5"), "--force", "--steps", str(steps), "--seq", str(args.seq),
           "--rank", str(RANK), "--alpha", str(ALPHA), "--targets", TARGETS, "--json", "--precision", precision]
    wall, cpu, rss, out = run_usage(cmd, bench_env(threads))
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{") and "tokens_per_s" in l]
    tps = [l["tokens_per_s"] for l in lines]
    return {"tokens_per_s": statistics.median(tps[1:] or tps), "peak_rss": rss, "wall": wall, "cpu": cpu,
            "precision": lines[-1].get("precision", "f32") if lines else "?"}


def torch_train(args, model, data, threads, steps, mode):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", model, data, str(threads), str(steps),
           str(args.seq), mode]
    wall, cpu, rss, out = run_usage(cmd, bench_env(threads))
    r = json.loads(out.strip().splitlines()[-1])
    return {"tokens_per_s": statistics.median(r["tps"][1:] or r["tps"]), "peak_rss": rss, "wall": wall,
            "cpu_per_token": statistics.median(r["cpu_per_token"][1:] or r["cpu_per_token"])}


# ----------------------------------------------------------------------------- PyTorch side

def torch_worker(model, data, threads, steps, seq, mode):
    import sentencepiece
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
    import torch_lora_ref as L
    import torch_ref as R
    torch.set_num_threads(threads)
    R.F = torch.float32  # the reference's compute type (float64 in the tests)
    L.F = torch.float32
    c = json.load(open(os.path.join(model, "config.json")))
    base_dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    tensors = {}
    for name, dtype, shape, buf in R.safetensors_entries(model):
        assert dtype == "BF16", name
        t = torch.from_numpy(np.frombuffer(buf, np.int16).copy()).view(torch.bfloat16).reshape(shape)
        # Norms, embeddings and scalars stay float32 (as the autocast model's would be).
        big = "proj" in name and t.dim() == 2
        tensors[name] = t.to(base_dtype if big else torch.float32)
    w = R.W(tensors, ["model.language_model.", "model.", ""])
    adapters = {}
    g = torch.Generator().manual_seed(0)
    for name, t in tensors.items():
        mod = name.split(".")[-2]
        if t.dim() == 2 and mod.replace("_proj", "") in TARGETS.split(",") and ".layers." in name:
            l = int(name.split(".layers.")[1].split(".")[0])
            key = (l, name.split(".layers.%d." % l)[1][:-len(".weight")])
            a = (torch.rand(RANK, t.shape[1], generator=g) - 0.5) * 0.02
            b = torch.zeros(t.shape[0], RANK)
            adapters[key] = (a.requires_grad_(), b.requires_grad_())
    params = [p for ab in adapters.values() for p in ab]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model, "tokenizer.model"))
    ids = sp.encode(open(data, encoding="utf-8").read())
    tps, cpt = [], []
    for s in range(steps):
        chunk = torch.tensor(ids[s * seq:(s + 1) * seq], dtype=torch.int64)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            logits = L.lora_forward(c, w, chunk[:-1], adapters, ALPHA / RANK)
        loss = torch.nn.functional.cross_entropy(logits.float(), chunk[1:], reduction="sum") / (seq - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        tps.append((seq - 1) / dt)
        cpt.append(dc / (seq - 1))
    print(json.dumps({"tps": tps, "cpu_per_token": cpt}))


# ----------------------------------------------------------------------------- peak

def sgemm_peak(threads):
    code = r"""
import time, json, numpy as np, torch, sys
torch.set_num_threads(%d)
n = 2048
res = {}
for name, f in [("numpy_f32", lambda a, b: a @ b)]:
    a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
    f(a, b); best = min((lambda t0: (f(a, b), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
    res[name] = 2 * n ** 3 / best / 1e9
for name, dt in [("torch_f32", torch.float32), ("torch_bf16", torch.bfloat16)]:
    a = torch.rand(n, n).to(dt); b = torch.rand(n, n).to(dt)
    a @ b; best = min((lambda t0: (a @ b, time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
    res[name] = 2 * n ** 3 / best / 1e9
print(json.dumps(res))
""" % threads
    _, out = run([sys.executable, "-c", code], bench_env(threads))
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "temper_bench_train"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--models", default="llama-0.5b,llama-1b,gemma4-e2b")
    ap.add_argument("--no-qlora", action="store_true")
    ap.add_argument("--torch-modes", default="fp32,bf16", help="PyTorch modes to time (bf16: autocast)")
    ap.add_argument("--temper-precisions", default="bf16,f32",
                    help="temper train --precision values to time (bf16 falls back to f32 without native bf16)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the 1-thread CPU-time runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.temper = os.path.join(args.build, "temper")
    args.seq = 64 if args.quick else 512
    models = ["quick"] if args.quick else args.models.split(",")
    steps = 3 if args.quick else args.steps
    os.makedirs(args.work, exist_ok=True)
    data = os.path.join(args.work, "data.txt")
    open(data, "w", encoding="utf-8").write(open(TEXT, encoding="utf-8").read())
    bench_env(args.threads)  # prints the CPU and what it unsets
    print("threads", args.threads, "; load average at start", os.getloadavg())
    peak = sgemm_peak(args.threads)
    best = max(peak.values())
    print("sgemm 2048^3 GFLOP/s:", {k: round(v, 1) for k, v in peak.items()}, "-> peak", round(best, 1))
    results = {"peak": peak, "threads": args.threads, "seq": args.seq, "models": {}}
    for name in models:
        model = make_model(args.work, name)
        P = layer_params(model)
        r = {"layer_params": P}
        print(f"\n== {name}: {P / 1e6:.0f}M projection parameters, seq {args.seq}, rank {RANK}, load {os.getloadavg()}")

        def show(label, x):
            gf = 4 * P * x["tokens_per_s"] / 1e9
            print(f"  {label:14s} {x['tokens_per_s']:8.1f} tok/s  peak RSS {x['peak_rss'] / 2**20:8.0f} MiB  "
                  f"useful {gf:6.1f} GFLOP/s = {gf / best:5.1%} of peak")
        precisions = args.temper_precisions.split(",")
        for prec in precisions:
            x = temper_train(args, model, data, args.threads, steps, prec)
            r["temper" if prec == precisions[0] else "temper_" + prec] = x
            show(f"temper {x['precision']}", x)
        modes = args.torch_modes.split(",")
        for mode in modes:
            r["torch_" + mode] = torch_train(args, model, data, args.threads, steps, mode)
            show("torch " + mode, r["torch_" + mode])
        tb = max(r["torch_" + m]["tokens_per_s"] for m in modes)
        rb = min(r["torch_" + m]["peak_rss"] for m in modes)
        print(f"  temper / torch best of {modes}: speed {r['temper']['tokens_per_s'] / tb:.2f}x (target >= 2), "
              f"RSS {r['temper']['peak_rss'] / rb:.2f}x (target <= 0.5)")
        for mode in modes:
            print(f"  temper {r['temper']['precision']} / torch {mode}: speed "
                  f"{r['temper']['tokens_per_s'] / r['torch_' + mode]['tokens_per_s']:.2f}x")
        if not args.no_qlora:
            for qt in ("Q8_0", "Q4_K_M"):
                g = os.path.join(args.work, f"{name}.{qt}.gguf")
                if not os.path.exists(g):
                    run([args.temper, "-q", "quantize", model, "-t", qt, "-o", g], bench_env(args.threads))
                r["temper_" + qt] = temper_train(args, g, data, args.threads, steps, precisions[0])
                show("temper " + qt, r["temper_" + qt])
        if not args.no_cpu:
            one = temper_train(args, model, data, 1, 1, precisions[0])
            many = temper_train(args, model, data, 1, steps, precisions[0])
            t_cpt = (many["cpu"] - one["cpu"]) / ((steps - 1) * (args.seq - 1))
            c = {"temper": t_cpt}
            for mode in modes:
                c["torch_" + mode] = torch_train(args, model, data, 1, steps, mode)["cpu_per_token"]
            r["cpu_per_token_1t"] = c
            print("  1 thread, CPU ms/token: " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in c.items()) +
                  f"; torch best / temper = {min(c['torch_' + m] for m in modes) / t_cpt:.2f}x")
        results["models"][name] = r
    print("\nload average at end", os.getloadavg())
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--torch-worker":
        m, d, th, st, sq, mode = sys.argv[2:8]
        torch_worker(m, d, int(th), int(st), int(sq), mode)
    else:
        main()
