#!/usr/bin/python3
"""Independent check of any .h5 temper writes (h5py + numpy, no temper code).

Usage: h5py_read_all.py FILE
Opens FILE with h5py, reads every attribute and every dataset in full, and prints JSON:
{"superblock": N, "groups": n, "datasets": n, "attributes": n, "strings": n, "variable_length": [names]}
where "strings" counts string values decoded as UTF-8 and "variable_length" lists every object
whose type is variable-length (temper writes none). Exits 2 with the error on stderr if anything
cannot be read.
"""
import json
import sys

import h5py
import numpy as np


def main(path):
    with open(path, "rb") as f:
        head = f.read(9)
    out = {"superblock": head[8] if head[:8] == b"\x89HDF\r\n\x1a\n" else -1,
           "groups": 0, "datasets": 0, "attributes": 0, "strings": 0, "variable_length": []}

    def check_type(name, dtype):
        if h5py.check_vlen_dtype(dtype) is not None or (
                h5py.check_string_dtype(dtype) is not None and h5py.check_string_dtype(dtype).length is None):
            out["variable_length"].append(name)

    def value(name, v):
        if isinstance(v, (bytes, np.bytes_)):
            v.decode("utf-8")
            out["strings"] += 1

    def attrs(name, obj):
        for k in obj.attrs:
            out["attributes"] += 1
            check_type(f"{name} attribute {k}", obj.attrs.get_id(k).dtype)
            value(name, obj.attrs[k])

    def visit(name, obj):
        attrs(name, obj)
        if isinstance(obj, h5py.Group):
            out["groups"] += 1
        else:
            out["datasets"] += 1
            check_type(name, obj.dtype)
            value(name, obj[()])

    with h5py.File(path, "r") as f:
        attrs("/", f)
        f.visititems(visit)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as e:  # one line + exit 2 for the C++ test
        print(f"h5py_read_all: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
