#!/usr/bin/python3
"""Compares two GGUF files with llama.cpp's own reader (gguf-py from the bundled llama.cpp
release): every KV (type and value) and every tensor (name, type, shape, bytes).

  gguf_compare.py A.gguf B.gguf [--ignore-keys k1,k2] [--ignore-key-prefix p] [--types-only]
                  [--tensor-order]

Prints a JSON report; exit 0 only when nothing differs (and at least one tensor was compared).
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("TEMPER_LLAMA_REF_DIR", os.path.join(HERE, "..", "..", ".llama-ref"))
sys.path.insert(0, os.path.join(REF, "llama.cpp", "gguf-py"))
import gguf  # noqa: E402
import numpy as np  # noqa: E402


def kv_table(reader):
    out = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, float):
            value = float(np.float32(value))
        elif isinstance(value, list) and value and isinstance(value[0], float):
            value = [float(np.float32(v)) for v in value]
        out[name] = ([t.name for t in field.types], value)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore-keys", default="")
    ap.add_argument("--ignore-key-prefix", action="append", default=[])
    ap.add_argument("--types-only", action="store_true", help="compare tensor types/shapes, not bytes")
    ap.add_argument("--tensor-order", action="store_true", help="also require the same tensor order")
    ap.add_argument("--allow-only-in-b", default=None,
                    help="regex: tensors that B may hold and A not (e.g. unused tensors the converter keeps)")
    args = ap.parse_args()
    ignore = set(filter(None, args.ignore_keys.split(",")))
    ra, rb = gguf.GGUFReader(args.a), gguf.GGUFReader(args.b)
    diffs = []
    ka, kb = kv_table(ra), kv_table(rb)
    for k in sorted(set(ka) | set(kb)):
        if k in ignore or any(k.startswith(p) for p in args.ignore_key_prefix):
            continue
        if k not in ka or k not in kb:
            diffs.append({"key": k, "only_in": "a" if k in ka else "b",
                          "value": str((ka.get(k) or kb.get(k))[1])[:200]})
        elif ka[k] != kb[k]:
            diffs.append({"key": k, "a": str(ka[k])[:300], "b": str(kb[k])[:300]})
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    compared = 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta and args.allow_only_in_b and re.fullmatch(args.allow_only_in_b, name):
            continue
        if name not in ta or name not in tb:
            diffs.append({"tensor": name, "only_in": "a" if name in ta else "b"})
            continue
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
            diffs.append({"tensor": name, "a": [x.tensor_type.name, list(map(int, x.shape))],
                          "b": [y.tensor_type.name, list(map(int, y.shape))]})
            continue
        compared += 1
        if not args.types_only and bytes(x.data.tobytes()) != bytes(y.data.tobytes()):
            xa, ya = np.frombuffer(x.data.tobytes(), np.uint8), np.frombuffer(y.data.tobytes(), np.uint8)
            first = int(np.argmax(xa != ya)) if xa.size == ya.size else -1
            diffs.append({"tensor": name, "bytes_differ": True, "type": x.tensor_type.name, "first_byte": first})
    if args.tensor_order and [t.name for t in ra.tensors] != [t.name for t in rb.tensors]:
        diffs.append({"tensor_order": [[t.name for t in ra.tensors][:10], [t.name for t in rb.tensors][:10]]})
    print(json.dumps({"same": not diffs and compared > 0, "tensors_compared": compared, "diffs": diffs[:50],
                      "n_diffs": len(diffs)}, indent=1))
    return 0 if not diffs and compared > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
