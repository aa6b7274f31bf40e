#!/usr/bin/python3
"""Rewrite a .h5 from an older temper in the layout this temper reads.

  scripts/h5_upgrade.py OLD.h5 NEW.h5

Older temper builds wrote variable-length strings (and, before that, HDF5's oldest file format,
without checksums). temper now refuses both: HDF5 keeps variable-length strings in a "global
heap" that has no checksum, and its reader of it overflowed on corrupted files (README,
"Untrusted files"). This script, which uses h5py and so parses those strings itself, writes
NEW.h5 in HDF5's 1.10 format with every string fixed-length and every list of strings as
NUL-terminated UTF-8 bytes (uint8); everything else (tensors, chunking, compression, adapters,
optimizer state) is copied as it is. A checkpoint gets format_version 2. Use it only on files
you trust, e.g. an adapter you trained; for a checkpoint, re-running `temper convert` is the
other way.
"""
import sys

import h5py
import numpy as np


def fixed(s):
    """A fixed-length string value (h5py stores a numpy bytes_ so)."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return np.bytes_(b if b else b"\0")


def is_string(dtype):
    return h5py.check_string_dtype(dtype) is not None


def copy_attrs(src, dst):
    for k in src.attrs:
        v = src.attrs[k]
        if k in dst.attrs:
            del dst.attrs[k]
        if is_string(src.attrs.get_id(k).dtype):
            dst.attrs[k] = fixed(v)
        else:
            dst.attrs.create(k, v, dtype=src.attrs.get_id(k).dtype)


def copy_group(src, dst):
    for name, obj in src.items():
        if isinstance(obj, h5py.Group):
            order = obj.id.get_create_plist().get_link_creation_order() != 0
            copy_group(obj, dst.create_group(name, track_order=order))
        elif is_string(obj.dtype) and obj.shape == ():
            dst.create_dataset(name, data=fixed(obj[()]))
        elif is_string(obj.dtype):
            joined = b"".join((s if isinstance(s, bytes) else s.encode()) + b"\0" for s in obj[()])
            dst.create_dataset(name, data=np.frombuffer(joined, dtype=np.uint8))
        else:
            src.copy(obj, dst, name=name)
        copy_attrs(obj, dst[name])


def main(old, new):
    with h5py.File(old, "r") as src, h5py.File(new, "w-", libver=("v110", "v110")) as dst:
        copy_group(src, dst)
        copy_attrs(src, dst)
        if src.attrs.get("format") in ("temper-checkpoint", b"temper-checkpoint"):
            dst.attrs["format_version"] = np.int32(2)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n\n")[1])
    main(sys.argv[1], sys.argv[2])
