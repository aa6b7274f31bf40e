#!/usr/bin/python3
"""A Llama-shaped bf16 HF checkpoint large enough that its weights dominate a process's memory
(hidden 512, 8 layers, MLP 1536: 26M parameters, 52 MB in bf16), from scripts/tiny_models.py's
seeded writer, for the QLoRA peak-RSS test.

    /usr/bin/python3 tests/train/make_wide_llama.py OUT_DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import tiny_models as T  # noqa: E402


def main(argv):
    T.write_wide_llama(argv[0], hidden=512, ffn=1536, layers=8, heads=8, kv_heads=4)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
