"""Reads the tensors and plain attributes of a TorchScript archive without importing torch.

A TorchScript file (`torch.jit.save`) is a zip holding `<root>/data.pkl`, a pickle of the module
tree, and `<root>/data/<key>`, one raw little-endian buffer per storage. The pickle refers to
storages through persistent ids `('storage', <dtype class>, <key>, <device>, <numel>)` and builds
tensors with `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`. This reader
replaces every torch class with a plain record, so the file yields numpy arrays.
"""

import collections
import pickle
import zipfile

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Record:
    """Stands in for any scripted module: keeps the state dict it is unpickled with."""

    def __init__(self, *args):
        self.state = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_state": state}


class _Storage:
    def __init__(self, key, dtype_name):
        self.key, self.dtype_name = key, dtype_name


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(tensor, *unused):
    return tensor


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch._utils" and name.startswith("_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name.endswith("Storage"):
            return name
        if module == "torch.jit._pickle" and name.startswith("build_"):
            return lambda value: value  # build_intlist, build_doublelist, ...
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return type(name, (_Record,), {})

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}.")
        dtype_name = pid[1] if isinstance(pid[1], str) else getattr(pid[1], "__name__", str(pid[1]))
        return _Storage(str(pid[2]), dtype_name)


def read_torchscript(path):
    """Returns ({dotted name: numpy array}, {dotted name: int/float/list attribute}) of a TorchScript file.

    Names follow the module tree, e.g. `net.layers.mixed_3.conv.weight`. Attributes are the non-tensor
    values scripted modules keep (strides, paddings), without `training` and hook flags.
    """
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            raise ValueError(f"{path} is not a TorchScript archive (no <root>/data.pkl inside).")
        root_dir = pickles[0].split("/")[0]
        with archive.open(pickles[0]) as f:
            root = _Unpickler(f).load()
        tensors, attributes = {}, {}

        def load(tensor):
            dtype = _DTYPES.get(tensor.storage.dtype_name)
            if dtype is None:
                raise ValueError(f"Unsupported storage type {tensor.storage.dtype_name} in {path}.")
            buffer = np.frombuffer(archive.read(f"{root_dir}/data/{tensor.storage.key}"), dtype)
            itemsize = np.dtype(dtype).itemsize
            return np.lib.stride_tricks.as_strided(
                buffer[tensor.offset:], tensor.size, [s * itemsize for s in tensor.stride]
            ).copy()

        def walk(record, prefix):
            for key, value in record.state.items():
                name = prefix + key
                if isinstance(value, _Record):
                    walk(value, name + ".")
                elif isinstance(value, _Tensor):
                    tensors[name] = load(value)
                elif key not in ("training", "_is_full_backward_hook") and isinstance(value, (int, float, list)):
                    attributes[name] = value

        walk(root, "")
    return tensors, attributes
