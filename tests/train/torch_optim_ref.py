#!/usr/bin/python3
"""PyTorch 1.13 reference for temper's optimiser: torch.optim.AdamW, clip_grad_norm_ and the
warm-up schedules as transformers defines them (get_linear/cosine_schedule_with_warmup, written
out here from their definitions since transformers is not installed).

    /usr/bin/python3 tests/train/torch_optim_ref.py CASE.json IN.f32 OUT.f32

CASE.json: {"sizes": [...], "steps": S, "lr", "wd", "clip", "warmup", "schedule"}
IN.f32:    initial parameters (all tensors), then the gradients of every step (all tensors).
OUT.f32:   final parameters, then per step the total gradient norm before clipping and the lr.
"""
import json
import math
import sys

import numpy as np
import torch


def lr_lambda(schedule, step, warmup, total):
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def main(argv):
    case = json.load(open(argv[0]))
    raw = np.fromfile(argv[1], dtype="<f4")
    sizes, steps = case["sizes"], case["steps"]
    total = sum(sizes)
    params, off = [], 0
    for n in sizes:
        params.append(torch.nn.Parameter(torch.tensor(raw[off:off + n].copy())))
        off += n
    opt = torch.optim.AdamW(params, lr=case["lr"], weight_decay=case["wd"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_lambda(case["schedule"], s, case["warmup"], steps))
    log = []
    for s in range(steps):
        for p, n in zip(params, sizes):
            p.grad = torch.tensor(raw[off:off + n].copy())
            off += n
        norm = torch.nn.utils.clip_grad_norm_(params, case["clip"])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        log += [float(norm), lr]
    assert off == raw.size
    out = np.concatenate([p.detach().numpy() for p in params] + [np.array(log)])
    out.astype("<f4").tofile(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
