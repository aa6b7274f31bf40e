#!/usr/bin/python3
"""Independent safetensors/HDF5 tooling for temper's tests (numpy + h5py only, no temper code).

  st_tool.py compare CHECKPOINT.h5 HF_DIR [SKIPPED,NAMES]   every tensor of the HF folder (after the usual
      wrapper-prefix stripping, towers skipped) equals the .h5 dataset bit for bit, and the .h5
      holds nothing else; prints a JSON summary.
  st_tool.py drop SRC_DIR DST_DIR NAME      copy a single-file HF folder without tensor NAME.
  st_tool.py corrupt SRC_DIR DST_DIR KIND  copy a folder with one bad-input defect (see corrupt()).
  st_tool.py poke SRC_DIR DST_DIR NAME INDEX VALUE   copy a folder, setting one element.
  st_tool.py edit-config SRC_DIR DST_DIR JSON_PATCH   copy a folder, patching config.json
      (keys with null values are deleted).
"""
import json
import os
import shutil
import struct
import sys

import h5py
import numpy as np

DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}
TOWERS = ("model.vision_tower.", "model.embed_vision.", "model.audio_tower.", "model.embed_audio.",
          "vision_tower.", "multi_modal_projector.", "model.multi_modal_projector.")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, end = e["data_offsets"]
            f.seek(base + b)
            out[name] = (e["dtype"], e["shape"], f.read(end - b))
        return out


def read_hf_dir(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for fn in files:
        tensors.update(read_safetensors(os.path.join(d, fn)))
    return tensors


def canonical(name):
    if name.startswith(TOWERS):
        return None
    for old, new in (("model.language_model.", "model."), ("language_model.model.", "model."),
                     ("language_model.lm_head.", "lm_head.")):
        if name.startswith(old):
            return new + name[len(old):]
    return name


def compare(h5_path, hf_dir, skipped=()):
    """`skipped`: names temper reported as skipped (unused by the model); they must be absent."""
    src = read_hf_dir(hf_dir)
    with h5py.File(h5_path, "r") as f:
        assert f.attrs["format"] in ("temper-checkpoint", b"temper-checkpoint"), "format attribute"
        group = f["tensors"]
        seen = set()
        checked = 0
        for name, (dtype, shape, raw) in src.items():
            canon = canonical(name)
            if canon is None or canon.endswith("rotary_emb.inv_freq"):
                continue
            if name in skipped:
                if canon in group:
                    print(json.dumps({"skipped_but_present": canon}))
                    return 1
                continue
            if canon not in group:
                print(json.dumps({"missing": canon}))
                return 1
            ds = group[canon]
            data = ds[()]
            expect = np.frombuffer(raw, dtype=DTYPES[dtype][0]).reshape(shape)
            if list(data.shape) != list(shape) or data.dtype != expect.dtype:
                print(json.dumps({"mismatch": canon, "shape": list(data.shape), "dtype": str(data.dtype),
                                  "expected_shape": shape, "expected_dtype": str(expect.dtype)}))
                return 1
            if data.tobytes() != expect.tobytes():
                print(json.dumps({"bytes_differ": canon}))
                return 1
            attr = ds.attrs["dtype"]
            attr = attr.decode() if isinstance(attr, bytes) else attr
            if attr != dtype.lower():
                print(json.dumps({"dtype_attr": canon, "got": attr}))
                return 1
            seen.add(canon)
            checked += 1
        extra = sorted(set(group.keys()) - seen)
        if extra:
            print(json.dumps({"extra": extra}))
            return 1
        print(json.dumps({"ok": True, "tensors": checked}))
        return 0 if checked > 0 else 1


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    for fn in os.listdir(dst):
        os.chmod(os.path.join(dst, fn), 0o644)


def raw_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()


def write_raw(path, header_bytes, data, declared_len=None):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if declared_len is None else declared_len))
        f.write(header_bytes + data)


def corrupt(src, dst, kind):
    """Broken variants of SRC's model.safetensors (or its layout), one per bad-input case."""
    copy_dir(src, dst)
    path = os.path.join(dst, "model.safetensors")
    header, data = raw_header(path)
    first = next(k for k in header if k != "__metadata__")
    hb = json.dumps(header).encode()
    if kind == "truncated":
        with open(path, "rb") as f:
            blob = f.read()
        open(path, "wb").write(blob[: len(blob) // 2])
    elif kind == "header_too_long":
        write_raw(path, hb, data, declared_len=len(hb) + len(data) + 4096)
    elif kind == "not_json":
        write_raw(path, b"{this is not json" + b" " * 7, data)
    elif kind == "deep_nesting":
        write_raw(path, b"[" * 100000 + b"]" * 100000, data)
    elif kind in ("offset_out_of_range", "overlap", "size_mismatch", "shape_overflow", "unknown_dtype", "unsupported_dtype"):
        e = header[first]
        b, end = e["data_offsets"]
        if kind == "offset_out_of_range":
            e["data_offsets"] = [len(data) - 4, len(data) - 4 + (end - b)]
        elif kind == "overlap":
            other = [k for k in header if k not in ("__metadata__", first)][0]
            header[other]["data_offsets"] = [b + 4, b + 4 + (header[other]["data_offsets"][1] - header[other]["data_offsets"][0])]
        elif kind == "size_mismatch":
            e["shape"] = e["shape"][:-1] + [e["shape"][-1] + 1]
        elif kind == "shape_overflow":
            e["shape"] = [2 ** 40, 2 ** 40, 2 ** 20]
        elif kind == "unknown_dtype":
            e["dtype"] = "F12"
        else:
            e["dtype"] = "I8"
        write_raw(path, json.dumps(header).encode(), data)
    elif kind in ("duplicate_across_shards", "missing_shard"):
        names = [k for k in header if k != "__metadata__"]
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        if kind == "duplicate_across_shards":
            shards["model-00002-of-00002.safetensors"].append(names[0])
        full = read_safetensors(path)
        os.remove(path)
        weight_map = {}
        for fn, part in shards.items():
            write_safetensors(os.path.join(dst, fn), {n: full[n] for n in part})
            for n in part:
                weight_map.setdefault(n, fn)
        if kind == "missing_shard":
            os.remove(os.path.join(dst, "model-00002-of-00002.safetensors"))
        json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(dst, "model.safetensors.index.json"), "w"))
    else:
        raise SystemExit("unknown corruption " + kind)
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == "compare":
        return compare(argv[2], argv[3], set(argv[4].split(",")) if len(argv) > 4 and argv[4] else ())
    if cmd == "drop":
        copy_dir(argv[2], argv[3])
        tensors = read_safetensors(os.path.join(argv[2], "model.safetensors"))
        del tensors[argv[4]]
        write_safetensors(os.path.join(argv[3], "model.safetensors"), tensors)
        return 0
    if cmd == "corrupt":  # corrupt SRC DST KIND: a broken copy of a single-file HF folder
        return corrupt(argv[2], argv[3], argv[4])
    if cmd == "poke":  # poke SRC DST NAME INDEX VALUE: set one element (e.g. nan) of an f32 tensor
        copy_dir(argv[2], argv[3])
        tensors = read_safetensors(os.path.join(argv[2], "model.safetensors"))
        dtype, shape, raw = tensors[argv[4]]
        a = np.frombuffer(raw, dtype=DTYPES[dtype][0]).copy()
        a[int(argv[5])] = float(argv[6])
        tensors[argv[4]] = (dtype, shape, a.tobytes())
        write_safetensors(os.path.join(argv[3], "model.safetensors"), tensors)
        return 0
    if cmd == "edit-config":
        copy_dir(argv[2], argv[3])
        path = os.path.join(argv[3], "config.json")
        cfg = json.load(open(path))
        for k, v in json.loads(argv[4]).items():
            if v is None:
                cfg.pop(k, None)
            else:
                cfg[k] = v
        json.dump(cfg, open(path, "w"), indent=2)
        return 0
    raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
