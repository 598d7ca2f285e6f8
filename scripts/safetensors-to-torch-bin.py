#!/usr/bin/env python3
"""Writes a safetensors checkpoint as a pytorch_model.bin, without torch.

The output has the layout torch.save (>= 1.6) writes: a zip of stored
entries `<archive>/data.pkl` (a protocol-2 pickle of an OrderedDict whose
tensors are `torch._utils._rebuild_tensor_v2` calls on persistent-id
storages), `<archive>/data/<n>` (the raw little-endian storages),
`<archive>/byteorder` and `<archive>/version`. Used to measure bertc's
reader on large checkpoints (torch itself is not a dependency of this
project); f32, f16, bf16 and int64 tensors.

    scripts/safetensors-to-torch-bin.py model.safetensors pytorch_model.bin
"""
import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile


def stub(module, name):
    """A picklable stand-in for torch's `module.name` (pickle writes the
    GLOBAL by name after checking the module attribute is the object)."""
    mod = sys.modules.setdefault(module, types.ModuleType(module))
    if hasattr(mod, name):
        return getattr(mod, name)
    obj = type(name, (), {"__module__": module, "__qualname__": name}) if name[0].isupper() else None
    if obj is None:
        def obj(*a):
            raise RuntimeError("stub")
        obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    setattr(mod, name, obj)
    return obj


STORAGE = {
    "F32": ("FloatStorage", 4),
    "F16": ("HalfStorage", 2),
    "BF16": ("BFloat16Storage", 2),
    "I64": ("LongStorage", 8),
}
sys.modules.setdefault("torch", types.ModuleType("torch"))
REBUILD = stub("torch._utils", "_rebuild_tensor_v2")
sys.modules["torch"]._utils = sys.modules["torch._utils"]


class Storage:
    def __init__(self, key, dtype, numel):
        self.key, self.cls, self.numel = key, stub("torch", STORAGE[dtype][0]), numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (REBUILD, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def main(src, dst):
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    state, blobs = collections.OrderedDict(), []
    for i, (name, info) in enumerate(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])):
        start, end = info["data_offsets"]
        size = STORAGE[info["dtype"]][1]
        state[name] = Tensor(Storage(str(i), info["dtype"], (end - start) // size), info["shape"])
        blobs.append((str(i), raw[8 + n + start : 8 + n + end]))
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, blob in blobs:
            z.writestr(f"archive/data/{key}", blob)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
