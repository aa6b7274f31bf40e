#!/usr/bin/python3
"""Independent validation loss of "text" JSONL records for train_cli_test: SentencePiece
tokenisation (BOS + text + EOS, every token after the first trained) and torch_lora_ref.py's
float64 HF Llama forward with one zero-B adapter (= the base model, as temper's --steps 0
adapter is). Prints the mean NLL per trained token.

    /usr/bin/python3 tests/train/torch_val_loss_ref.py MODEL_DIR DATA.jsonl WORK_DIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import sentencepiece

model, data, work = sys.argv[1:4]
sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(model, "tokenizer.model"))
hidden = json.load(open(os.path.join(model, "config.json")))["hidden_size"]
examples = []
for line in open(data):
    ids = [sp.bos_id()] + sp.encode(json.loads(line)["text"]) + [sp.eos_id()]
    examples.append({"tokens": ids, "trained": [0] + [1] * (len(ids) - 1)})
case = {"examples": examples, "rank": 4, "alpha": 8, "rslora": False,
        "pairs": [{"layer": 0, "module": "self_attn.q_proj"}]}
json.dump(case, open(os.path.join(work, "val_case.json"), "w"))
a = np.random.default_rng(0).standard_normal((4, hidden)).astype(np.float32)
b = np.zeros((hidden, 4), np.float32)  # B = 0: the adapter adds nothing
open(os.path.join(work, "val_lora.f32"), "wb").write(a.tobytes() + b.tobytes())
ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_lora_ref.py")
subprocess.run([sys.executable, ref, model, os.path.join(work, "val_case.json"),
                os.path.join(work, "val_lora.f32"), os.path.join(work, "val_out.f64")], check=True)
loss = struct.unpack("<d", open(os.path.join(work, "val_out.f64"), "rb").read(8))[0]
print("%.17g" % (loss / sum(sum(e["trained"]) for e in examples)))
