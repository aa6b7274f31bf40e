#!/usr/bin/python3
"""Benchmark (issue #16): data-parallel `temper train` over MPI on this machine, and a scaling
model for N machines built from what it measures here.

  bench/bench_mpi.py [--work DIR] [--model llama-0.5b|quick] [--steps 4] [--seq 256] [--json]

Measured, same model, data and global batch (--batch 2 --grad-accum 2 = 4 examples per step):
  N = 1: one process, all cores;   N = 2: `mpirun -np 2`, one core each.
Per-step wall seconds come from the --json lines (cumulative tokens / tokens_per_s), after the
first step; allreduce seconds from rank 0's `allreduce_seconds` (the sum plus waiting for the
slower rank). The adapter's gradient bytes = 4 x its parameters (f32), read from the adapter.

Scaling model (stated, not measured): M identical machines, a global batch of B examples split
evenly (ceil(B / M) per machine), compute per example c = (N = 1 step time) / 4 measured here,
and a ring allreduce of the gradient bytes G: 2 (M - 1) / M * G / bandwidth + 2 (M - 1) * latency,
with bandwidth/latency 1 Gbit/s / 50 us, 10 Gbit/s / 20 us, 100 Gbit/s / 5 us.
steps/s(M) = 1 / (ceil(B / M) c + allreduce). Timed processes run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset (printed). Not a test: asserts nothing about time.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_train  # noqa: E402

NETWORKS = [("1 Gbit/s", 1e9 / 8, 50e-6), ("10 Gbit/s", 10e9 / 8, 20e-6), ("100 Gbit/s", 100e9 / 8, 5e-6)]
MACHINES = [1, 2, 4, 8, 16, 32, 64]


def step_lines(json_text):
    return [json.loads(l) for l in json_text.splitlines() if l.startswith("{") and "loss" in l]


def run_train(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_mpi: {' '.join(cmd)} failed:\n{p.stderr}")
    return p.stdout


def per_step_seconds(out, tokens_per_step):
    """-> (median wall seconds per step after the first, median allreduce seconds per step).
    tokens_per_s is cumulative since the start, and every step holds tokens_per_step tokens
    (.txt chunks of --seq), so step k ends at k * tokens_per_step / tokens_per_s."""
    lines = step_lines(out)
    t = [k * tokens_per_step / j["tokens_per_s"] for k, j in enumerate(lines, 1)]
    steps = [b - a for a, b in zip(t, t[1:])]
    reduce = [j.get("allreduce_seconds", 0.0) for j in lines[1:]]
    return statistics.median(steps), statistics.median(reduce) if reduce else 0.0


def adapter_bytes(path):
    code = ("import h5py,sys; f=h5py.File(sys.argv[1])['adapters']; "
            "print(sum(f[k].size for k in f))")
    n = int(subprocess.run(["/usr/bin/python3", "-c", code, path], check=True, stdout=subprocess.PIPE,
                           text=True).stdout)
    return 4 * n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/temper-bench-mpi")
    ap.add_argument("--model", default="llama-0.5b")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model = bench_train.make_model(a.work, a.model)
    data = os.path.join(a.work, "data.txt")
    if not os.path.exists(data):
        subprocess.run(["cp", bench_train.TEXT, data], check=True)
    temper = os.path.join(a.build, "temper")
    cores = os.cpu_count()
    common = ["train", model, "--data", data, "--steps", str(a.steps), "--seq", str(a.seq), "--batch", "2",
              "--grad-accum", "2", "--rank", "16", "--alpha", "32", "--targets", bench_train.TARGETS,
              "--json", "--force"]
    tokens_per_step = 4 * a.seq
    env = bench_train.bench_env(cores)
    out1 = run_train([temper, "-t", str(cores)] + common + ["-o", os.path.join(a.work, "n1.h5")], env)
    t1, _ = per_step_seconds(out1, tokens_per_step)
    env2 = dict(bench_train.bench_env(1), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out2 = run_train(["mpirun", "-np", "2", "--oversubscribe", temper] + common +
                     ["-o", os.path.join(a.work, "n2.h5")], env2)
    t2, reduce2 = per_step_seconds(out2, tokens_per_step)
    g = adapter_bytes(os.path.join(a.work, "n1.h5"))
    c = t1 / 4  # seconds per example with the whole machine
    load = os.getloadavg()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"bench_mpi: {cpu}, {a.model}, seq {a.seq}, 4 examples per step, {cores} cores, load {load[0]:.2f}")
    print(f"  N=1 ({cores} threads): {t1:.3f} s/step")
    print(f"  N=2 (mpirun, 1 thread each): {t2:.3f} s/step, allreduce {reduce2 * 1e3:.2f} ms/step "
          f"(gradients {g / 2**20:.1f} MiB)")
    print(f"  N=2 / N=1 speed: {t1 / t2:.2f}x (same run, same machine)")
    table = {}
    for batch in (64, 256):
        print(f"  model: steps/s for a global batch of {batch} examples on M machines like this one")
        print("    M     " + "  ".join(f"{n:>12}" for n, _, _ in NETWORKS))
        for m in MACHINES:
            row = []
            for name, bw, lat in NETWORKS:
                reduce = 0.0 if m == 1 else 2 * (m - 1) / m * g / bw + 2 * (m - 1) * lat
                row.append(1 / (math.ceil(batch / m) * c + reduce))
                table[f"B{batch}/M{m}/{name}"] = row[-1]
            print(f"    {m:<5} " + "  ".join(f"{v:12.4f}" for v in row))
    if a.json:
        print(json.dumps({"model": a.model, "seq": a.seq, "n1_step_s": t1, "n2_step_s": t2,
                          "n2_allreduce_s": reduce2, "gradient_bytes": g, "seconds_per_example": c,
                          "predicted_steps_per_s": table, "load": load}))


if __name__ == "__main__":
    main()
