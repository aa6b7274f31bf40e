#!/usr/bin/python3
"""A Llama-shaped bf16 HF checkpoint large enough that its weights dominate a process's memory
(hidden 512, 8 layers, MLP 1536: 26M parameters, 52 MB in bf16), from scripts/tiny_models.py's
seeded writer, for the QLoRA peak-RSS test.

    /usr/bin/python3 tests/train/make_wide_llama.py OUT_DIR
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import tiny_models as T  # noqa: E402


def main(argv):
    folder = argv[0]
    os.makedirs(folder, exist_ok=True)
    c = T.llama_config(tied=False)
    c.update(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
             num_key_value_heads=4, head_dim=64, torch_dtype="bfloat16")
    w = T.Weights(12345, 1.0)
    T.llama_like(w, c)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    for fname in T.TOKENIZER_FILES:
        shutil.copyfile(os.path.join(T.TOKENIZER_DIR, fname), os.path.join(folder, fname))
    T.write_checkpoint(folder, w.t, "bf16", False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
