#!/usr/bin/python3
"""PyTorch 1.13 training loop mirroring `temper train` for the end-to-end test, in float64:
the HF Llama + LoRA forward of torch_lora_ref.py, SentencePiece tokenisation (the model's
tokenizer.model, not temper's tokenizer), torch.optim.AdamW, clip_grad_norm_ and the LambdaLR
schedule of torch_optim_ref.py. Shares no code with temper's C++.

    /usr/bin/python3 tests/train/torch_train_ref.py MODEL_DIR DATA.jsonl INIT.h5 ARGS.json OUT.f64 \
        TEMPER_FINAL.h5

Data: every JSONL record's "text" -> [BOS] + ids + [EOS], cut to seq tokens; records in file
order, `batch` per micro-batch, `grad_accum` micro-batches per step, wrapping around. The loss
of a step is the sum of its token losses over its number of trained tokens.
OUT.f64: the loss of every step, then every adapter's A and B (INIT.h5's order) after training,
then the same tensors read from TEMPER_FINAL.h5 (h5py's reading, for the C++ test).
"""
import json
import math
import os
import sys

import h5py
import numpy as np
import sentencepiece
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "forward"))
import torch_lora_ref as L  # noqa: E402
import torch_optim_ref as O  # noqa: E402
import torch_ref as R  # noqa: E402

F = torch.float64


def main(argv):
    model_dir, data_path, init_path, args_path, out_path, temper_path = argv
    a = json.load(open(args_path))
    c = json.load(open(os.path.join(model_dir, "config.json")))
    w = R.W(R.load_safetensors(model_dir), ["model.", ""])
    sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    examples = []
    for line in open(data_path, encoding="utf-8"):
        if line.strip():
            ids = [sp.bos_id()] + sp.encode(json.loads(line)["text"]) + [sp.eos_id()]
            examples.append(ids[:a["seq"]])
    f = h5py.File(init_path, "r")
    r, alpha = int(f.attrs["rank"]), float(f.attrs["alpha"])
    scale = alpha / math.sqrt(r) if int(f.attrs["rslora"]) else alpha / r
    adapters, params = {}, []
    for name in f["adapters"]:  # creation order: layer-major, A before B
        if not name.endswith(".lora_A"):
            continue
        module = name[: -len(".lora_A")]
        layer = int(module.split(".")[2])
        A = torch.tensor(np.array(f["adapters"][name]), dtype=F, requires_grad=True)
        B = torch.tensor(np.array(f["adapters"][module + ".lora_B"]), dtype=F, requires_grad=True)
        adapters[(layer, module.split(".", 3)[3])] = (A, B)
        params += [A, B]
    order = list(f["adapters"])
    torch.set_num_threads(1)
    opt = torch.optim.AdamW(params, lr=a["lr"], weight_decay=a["weight_decay"])
    steps = a["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: O.lr_lambda(a["schedule"], s, a["warmup"], steps))
    losses, nxt = [], 0
    for _ in range(steps):
        chosen = []
        for _ in range(a["batch"] * a["grad_accum"]):
            chosen.append(examples[nxt])
            nxt = (nxt + 1) % len(examples)
        n_trained = sum(len(e) - 1 for e in chosen)
        opt.zero_grad()
        total = torch.zeros((), dtype=F)
        for ids in chosen:
            logits = L.lora_forward(c, w, torch.tensor(ids), adapters, scale)
            logp = torch.log_softmax(logits, dim=-1)
            total = total - logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum()
        loss = total / n_trained
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a["clip"])
        opt.step()
        sched.step()
        losses.append(loss.item())
    parts = [np.array(losses)]
    by_name = {}
    for (layer, module), (A, B) in adapters.items():
        base = "model.layers.%d.%s" % (layer, module)
        by_name[base + ".lora_A"], by_name[base + ".lora_B"] = A, B
    parts += [by_name[n].detach().numpy().ravel() for n in order]
    g = h5py.File(temper_path, "r")["adapters"]
    parts += [np.array(g[n], dtype=np.float64).ravel() for n in order]
    np.concatenate(parts).astype("<f8").tofile(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
