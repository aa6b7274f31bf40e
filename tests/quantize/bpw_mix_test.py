#!/usr/bin/env python3
"""temper quantize --target-bpw / --max-kld on the trained sample model (stories260K), checked
with numpy, llama.cpp's gguf-py and llama-perplexity, not with temper's own numbers:

1. The mix is the optimum of the printed sensitivities: an exact multiple-choice knapsack over
   integer bytes in numpy (its own DP, not temper's) reaches the same least summed KL within the
   budget, and the same fewest bytes within --max-kld (temper counts bytes in steps of
   ceil(range / 65536): for --max-kld here 2 bytes, so at most one step per tensor more).
2. The file: gguf-py reads every tensor with the chosen type and decodes it with its own
   dequantisers; the bits per weight over all tensors is <= the target.
3. Quality on held-out text (the TinyStories sample; the sensitivities are measured on the chat
   facts): KL by temper compare of the mix made for the size of the uniform --pure Q5_0 file is
   lower than that file's (measured: 0.0266 vs 0.0380), and so is llama-perplexity's
   --kl-divergence when the llama.cpp tools are installed (0.0253 vs 0.0313; this also shows
   llama.cpp loads it). Sabotage: with the candidate not swapped in (every KL the reference's),
   both fail (0.103 vs 0.038).
4. Other ladders and fused tensors, on tiny random models from scripts/tiny_models.py:
   llama-wide (256-wide rows: Q2_K..Q8_0, untied output kept >= Q4_K) and phi4-mini (attn_qkv
   and gate+up stored fused): the same knapsack and gguf-py checks, and the KL temper measured
   for the whole mix agrees within 10% with temper compare's on the written file over the same
   text (the runtime reading the GGUF, not the quantizer's in-memory tensors; measuring only the
   q rows of attn_qkv, as a fused tensor's first view, put it 25% low).
5. Bad input: a budget below the smallest mix (the message states the minimum, checked against
   numpy's), no calibration text, both --target-bpw and --max-kld, a KL no mix reaches: exit != 0,
   and no output file.
Usage: bpw_mix_test.py (env TEMPER_BIN; source dir found from this file).
"""
import json, os, shutil, subprocess, sys, tempfile

import numpy as np

from sample_checks import CALIB, HELD_OUT, MODEL, SRC, check, finish, gguf, quants, run

PERPLEXITY = os.path.join(SRC, ".llama-ref", "tools", "bin", "llama-perplexity")
SENS = ["--bpw-data", CALIB, "--bpw-tokens", "256", "--calib-ctx", "256"]  # one chunk: ~2 s per measurement


def knapsack(items, cap):
    """f[c] = least summed KL with at most c bytes above every item's smallest option (exact)."""
    f = np.zeros(cap + 1)
    for opts in items:
        lo = min(b for b, _ in opts)
        g = np.full(cap + 1, np.inf)
        for b, kl in opts:
            u = b - lo
            if u <= cap:
                g[u:] = np.minimum(g[u:], f[:cap + 1 - u] + kl)
        f = g
    return f


def file_bpw(path):
    r = gguf.GGUFReader(path)
    n = sum(int(np.prod([int(d) for d in t.shape])) for t in r.tensors)
    return sum(int(t.n_bytes) for t in r.tensors) * 8 / n, n


def llama_kld(model, base):
    r = subprocess.run([PERPLEXITY, "-m", model, "-f", HELD_OUT, "-c", "128", "--kl-divergence-base", base,
                        "--kl-divergence", "-fa", "off", "-ctk", "f32", "-ctv", "f32", "-t", "2"],
                       capture_output=True, text=True, env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(PERPLEXITY)))
    for line in r.stderr.splitlines() + r.stdout.splitlines():
        if line.strip().startswith("Mean    KLD:"):
            return float(line.split()[2])
    sys.exit("llama-perplexity on %s printed no KLD:\n%s" % (model, r.stderr[-2000:]))


def check_optimum(label, m, budget):
    items = [[(o["bytes"], o["kl"]) for o in t["options"]] for t in m["tensors"]]
    picked = [next(o for o in t["options"] if o["type"] == t["chosen"]) for t in m["tensors"]]
    lo = sum(min(b for b, _ in it) for it in items)
    hi = sum(max(b for b, _ in it) for it in items)
    # temper counts bytes in steps of u = ceil(slack / 65536), each tensor's rounded up: its mix is
    # optimal among those that fit N*(u-1) bytes less, and no better than the exact optimum.
    step = -(-(min(budget, hi) - lo) // 65536)
    f = knapsack(items, budget - lo)
    best, worst = f[-1], f[max(0, budget - lo - len(items) * (step - 1))]
    got = sum(o["kl"] for o in picked)
    tol = 1e-12 * max(best, 1e-30) + 1e-15
    check(best - tol <= got <= worst + tol and abs(m["predicted_kl"] - got) <= 1e-9 * got
          and sum(o["bytes"] for o in picked) <= budget,
          "%s: predicted KL %.8g, numpy knapsack optimum %.8g (%.8g with %d bytes less for %d-byte steps), "
          "within %d bytes" % (label, got, best, worst, len(items) * (step - 1), step, budget))
    return lo


def check_file(label, path, chosen, target):
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name.lower() for t in reader.tensors}
    bad = []
    for t in reader.tensors:
        a = quants.dequantize(t.data, t.tensor_type)
        if a.size != int(np.prod([int(x) for x in t.shape])) or not np.all(np.isfinite(a)):
            bad.append(t.name)
    check(all(types.get(k) == v.lower() for k, v in chosen.items()) and not bad,
          "%s: gguf-py reads every searched tensor with the chosen type and decodes all %d%s"
          % (label, len(types), (": not " + ", ".join(bad)) if bad else ""))
    bpw, n = file_bpw(path)
    check(bpw <= target, "%s: %.4f bits per weight <= target %.4f" % (label, bpw, target))
    return types, n


def tiny_models(d):
    folder = os.path.join(d, "tiny")
    subprocess.run([sys.executable, os.path.join(SRC, "scripts", "tiny_models.py"), folder, "--dtype", "f32",
                    "--only", "llama-wide,phi4-mini"], check=True, capture_output=True)
    for name, target, ladder in [("llama-wide", 5.0, "q2_k"), ("phi4-mini", 6.0, None)]:
        model, out = os.path.join(folder, name), os.path.join(d, name + ".gguf")
        sens = ["--bpw-data", HELD_OUT, "--bpw-tokens", "256", "--calib-ctx", "128"]
        m = json.loads(run(["quantize", model, "--target-bpw", repr(target), "-o", out, "--json"] + sens).stdout)["mix"]
        chosen = {t["name"]: t["chosen"] for t in m["tensors"]}
        _, n = check_file(name, out, chosen, target)
        check_optimum(name, m, int(np.floor(target * n / 8)) - m["fixed_bytes"])
        if ladder:
            opts = {t["name"]: [o["type"].lower() for o in t["options"]] for t in m["tensors"]}
            check(ladder in opts["blk.0.ffn_up.weight"] and min(opts["output.weight"]) == "q4_k",
                  "%s: k-quant ladder from %s; output.weight from q4_K" % (name, ladder))
        else:
            check(any("attn_qkv" in k for k in chosen), "%s: fused attn_qkv searched" % name)
        cmp = json.loads(run(["compare", model, out, "--text", HELD_OUT, "--ctx", "128", "--stride", "127",
                              "--chunks", "2", "--top-k", "512", "--json"]).stdout)
        kl = cmp["candidates"][0]["kl"]["mean"]
        check(abs(m["measured_kl"] - kl) <= 0.1 * kl, "%s: KL of the whole mix %.5f, temper compare on the file %.5f"
              % (name, m["measured_kl"], kl))


def main():
    d = tempfile.mkdtemp(prefix="bpw_mix_test_")
    uniform = os.path.join(d, "q5_0.gguf")
    run(["quantize", MODEL, "-t", "Q5_0", "--pure", "-o", uniform])
    target, n_params = file_bpw(uniform)
    target = float("%.4f" % target)  # the file's bits per weight, rounded down below
    mix = os.path.join(d, "mix.gguf")
    rep = json.loads(run(["quantize", MODEL, "--target-bpw", repr(target), "-o", mix, "--json"] + SENS).stdout)
    m = rep["mix"]
    chosen = {t["name"]: t["chosen"] for t in m["tensors"]}
    budget = int(np.floor(target * n_params / 8)) - m["fixed_bytes"]
    check(budget == m["budget_bytes"], "budget %d bytes for %d searched tensors" % (budget, len(chosen)))

    # 1. The optimum of the printed sensitivities (slack under 64 KiB: temper counts single
    # bytes, so check_optimum's window is the exact optimum).
    lo = check_optimum("budget", m, budget)
    check(budget - lo < 65536, "budget: slack %d bytes, counted exactly" % (budget - lo))
    print("predicted KL %.5f, measured with the whole mix %.5f (calibration text)" % (m["predicted_kl"], m["measured_kl"]))

    # 2. The file as llama.cpp's gguf-py reads it.
    check_file("file", mix, chosen, target)

    # 3. Held-out quality against the uniform file of (at least) the same size.
    cmp = json.loads(run(["compare", MODEL, uniform, mix, "--text", HELD_OUT, "--json"]).stdout)
    kl_u, kl_m = [c["kl"]["mean"] for c in cmp["candidates"]]
    check(kl_m < kl_u, "held-out KL (temper compare): mix %.5f < uniform Q5_0 %.5f (%.2fx)" % (kl_m, kl_u, kl_m / kl_u))
    if os.path.exists(PERPLEXITY):
        f32 = os.path.join(d, "f32.gguf")
        run(["quantize", MODEL, "-t", "F32", "-o", f32])
        base = os.path.join(d, "base.kld")
        subprocess.run([PERPLEXITY, "-m", f32, "-f", HELD_OUT, "-c", "128", "--kl-divergence-base", base, "-fa", "off",
                        "-ctk", "f32", "-ctv", "f32", "-t", "2"], capture_output=True,
                       env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(PERPLEXITY)), check=True)
        lu, lm = llama_kld(uniform, base), llama_kld(mix, base)
        check(lm < lu, "held-out KL (llama-perplexity, ctx 128): mix %.5f < uniform Q5_0 %.5f" % (lm, lu))
    else:
        print("skip llama-perplexity (not installed: scripts/setup-llama-ref.sh)")

    # --max-kld: the fewest bytes whose predicted KL is within the bound.
    bound = 1.5 * m["predicted_kl"]
    mk = os.path.join(d, "maxkld.gguf")
    rep2 = json.loads(run(["quantize", MODEL, "--max-kld", repr(bound), "-o", mk, "--json"] + SENS).stdout)
    m2 = rep2["mix"]
    items2 = [[(o["bytes"], o["kl"]) for o in t["options"]] for t in m2["tensors"]]
    picked2 = [next(o for o in t["options"] if o["type"] == t["chosen"]) for t in m2["tensors"]]
    lo2 = sum(min(b for b, _ in it) for it in items2)
    hi2 = sum(max(b for b, _ in it) for it in items2)
    f = knapsack(items2, hi2 - lo2)
    fewest = lo2 + int(np.argmax(f <= bound))
    bytes2 = sum(o["bytes"] for o in picked2)
    step = -(-(hi2 - lo2) // 65536)
    check(sum(o["kl"] for o in picked2) <= bound and fewest <= bytes2 <= fewest + step * len(items2),
          "--max-kld %.5g: %d bytes, predicted KL %.5g; numpy's fewest %d bytes (steps of %d)"
          % (bound, bytes2, sum(o["kl"] for o in picked2), fewest, step))

    tiny_models(d)

    # 5. Bad input.
    min_bpw = (m["fixed_bytes"] + lo) * 8 / n_params
    out = os.path.join(d, "bad.gguf")
    for args, want in [(["--target-bpw", "3"] + SENS, "%.3f bits per weight" % (np.ceil(min_bpw * 1000) / 1000)),
                       (["--target-bpw", repr(target)], "--bpw-data"),
                       (["--target-bpw", repr(target), "--max-kld", "0.1"] + SENS, "give one of them"),
                       (["--max-kld", "1e-9"] + SENS, "below the lowest KL")]:
        r = run(["quantize", MODEL, "-o", out] + args, ok=False)
        check(r.returncode != 0 and want in r.stderr and not [f for f in os.listdir(d) if f.startswith("bad.gguf")],
              "bad input %s: exit %d, '%s' in: %s" % (" ".join(args[:2]), r.returncode, want, r.stderr.strip()))
    shutil.rmtree(d)
    finish()


if __name__ == "__main__":
    main()
