#!/usr/bin/python3
"""Independent reader for temper checkpoints (h5py + numpy, no temper code).

Usage: h5py_read_checkpoint.py FILE
Prints JSON: format attributes, /config (attributes + per-layer datasets), /tokenizer,
chat template, provenance, and for every tensor its dtype attribute, numpy dtype, shape and the
SHA-256 of its raw little-endian bytes. Exits 2 with the error on stderr if anything cannot be
read (e.g. a zstd-compressed tensor when HDF5_PLUGIN_PATH does not provide filter 32015).
"""
import hashlib
import json
import sys

import h5py
import numpy as np


STRING_COLUMNS = {"ffn"}  # per-layer enum columns, stored as lists of strings


def py(v):
    """HDF5 attribute/dataset value -> JSON-serialisable Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray):
        return [py(x) for x in v.tolist()] if v.dtype.kind != "O" else [py(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def strings(ds):
    """A list of strings: a uint8 dataset of UTF-8 bytes, each string followed by a NUL."""
    if ds.dtype != np.uint8:
        raise ValueError(f"{ds.name}: expected NUL-terminated uint8 strings, found {ds.dtype}")
    return [b.decode("utf-8") for b in ds[()].tobytes().split(b"\0")[:-1]]


def raw_le_bytes(arr):
    arr = np.asarray(arr)
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).tobytes()


def main(path):
    out = {}
    with h5py.File(path, "r") as f:
        out["format"] = py(f.attrs["format"])
        out["format_version"] = py(f.attrs["format_version"])
        out["format_version_dtype"] = str(f.attrs["format_version"].dtype)
        out["arch"] = py(f.attrs["arch"])
        out["hf_architecture"] = py(f.attrs["hf_architecture"])

        cfg = f["config"]
        out["config"] = {k: py(v) for k, v in cfg.attrs.items()}
        out["config_json"] = cfg["config_json"].asstr()[()]
        out["generation_config_json"] = cfg["generation_config_json"].asstr()[()]
        layers = {}
        for name, ds in cfg["layers"].items():
            layers[name] = strings(ds) if name in STRING_COLUMNS else py(ds[()])
        counts = layers["rope_freq_factors_count"]
        values = layers["rope_freq_factors"]
        split, at = [], 0
        for n in counts:
            split.append(values[at:at + n])
            at += n
        layers["rope_freq_factors_per_layer"] = split
        out["layers"] = layers

        tok = f["tokenizer"]
        out["tokenizer"] = {k: py(v) for k, v in tok.attrs.items()}
        for name in ("tokens", "merges"):
            out["tokenizer"][name] = strings(tok[name])
        for name in ("scores", "token_types", "eog_ids"):
            out["tokenizer"][name] = py(tok[name][()])
        out["tokenizer"]["files_sha256"] = {
            name: hashlib.sha256(tok[name][()].tobytes()).hexdigest()
            for name in ("tokenizer_json", "tokenizer_model", "tokenizer_config_json", "special_tokens_map_json")
            if name in tok
        }
        out["chat_template"] = f["chat_template"].asstr()[()]
        prov = f["provenance"]
        out["provenance"] = {k: py(v) for k, v in prov.attrs.items()}
        out["provenance"]["files"] = strings(prov["files"])

        out["tensor_names"] = strings(f["tensor_names"])
        out["tensors_iteration_order"] = list(f["tensors"].keys())
        tensors = {}
        for name in out["tensor_names"]:
            ds = f["tensors"][name]
            data = ds[()]
            tensors[name] = {
                "dtype_attr": py(ds.attrs["dtype"]),
                "numpy_dtype": str(ds.dtype),
                "shape": list(ds.shape),
                "chunks": list(ds.chunks) if ds.chunks else None,
                "compression_filters": sorted(str(k) for k in ds._filters.keys()),
                "sha256": hashlib.sha256(raw_le_bytes(data)).hexdigest(),
            }
        out["tensors"] = tensors
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as e:  # report any failure as one line + exit 2 for the C++ test
        print(f"h5py_read_checkpoint: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
