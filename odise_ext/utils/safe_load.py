"""Reading weights and index files without executing code from them.

A Python pickle can run any code while it is read. Every file odise-ext reads goes through one of:

* :func:`safe_torch_load` - ``torch.load(weights_only=True)``: tensors, containers, numbers;
* :func:`safe_pickle_load` - plain pickles (detectron2 ``.pkl`` model-zoo weights, dataset index
  files) through an unpickler that only builds builtin containers and numpy arrays;
* :func:`read_torchscript_tensors` - the tensors of a TorchScript archive (OpenAI CLIP ``.pt``),
  read from its pickled data without loading (or running) its code.

A file needing anything else is refused with :class:`UnsafeFileError`, which says why and how
to convert the file. Setting the environment variable ``ODISE_EXT_ALLOW_PICKLE=1`` opts in to
reading such files with full pickle, for files you trust.
"""
import io
import logging
import os
import pickle
import zipfile
from typing import Dict

import torch

__all__ = [
    "ALLOW_PICKLE_ENV",
    "UnsafeFileError",
    "unsafe_file_error",
    "pickle_allowed",
    "safe_torch_load",
    "safe_pickle_load",
    "read_torchscript_tensors",
    "install_safe_detectron2_loading",
]

ALLOW_PICKLE_ENV = "ODISE_EXT_ALLOW_PICKLE"

_CONVERT_HINT = (
    "To convert a file you trust, load it once with full pickle and keep only its tensors, e.g. "
    "python -c \"import torch; c = torch.load('IN', weights_only=False); c = c.get('model', c); "
    "torch.save({'model': {k: v for k, v in c.items() if torch.is_tensor(v)}}, 'OUT.pth')\", "
    "or save them with safetensors. "
    f"Alternatively set {ALLOW_PICKLE_ENV}=1 to read such files with full pickle (only for files you trust)."
)


class UnsafeFileError(ValueError):
    """A file that can only be read by executing code stored in it."""


def pickle_allowed() -> bool:
    """Whether the user opted in to full pickle (``ODISE_EXT_ALLOW_PICKLE=1``)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "") in ("1", "true", "True", "yes")


def unsafe_file_error(path, why) -> UnsafeFileError:
    """The error for a file (or folder) that needs code execution to read: says why and how to convert."""
    return _refuse(path, why)


def _refuse(path, why):
    return UnsafeFileError(f"Refusing to read {path!r}: {why}. Reading it would execute code stored in the file. {_CONVERT_HINT}")


def _warn_unsafe(path):
    logging.getLogger(__name__).warning(f"{ALLOW_PICKLE_ENV} is set: reading {path!r} with full pickle (it may run code)")


def _numpy_scalar_globals():
    """numpy scalars and dtypes, which torch's weights-only unpickler refuses by default. mmcv
    runners store e.g. ``meta['hook_msgs']['best_score']`` as a numpy float (the released VPD /
    Meta-Prompts segmentation checkpoints); rebuilding one runs no code from the file. Both
    module names: numpy 1 pickles say ``numpy.core``, numpy 2 ones ``numpy._core``."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}  # numpy 2: numpy.dtypes.*DType
    return [np.dtype, *dtype_classes, scalar, (scalar, "numpy.core.multiarray.scalar"),
            (scalar, "numpy._core.multiarray.scalar")]


def safe_torch_load(path, map_location="cpu", mmap: bool = False):
    """``torch.load(path, weights_only=True)`` (numpy scalars allowed); a file that needs more is
    refused (or opted in). ``mmap``: memory-map a zip archive (torch.save's format since 1.6), so
    that tensors read their bytes from the file on demand instead of holding a second copy (legacy
    files load normally)."""
    with torch.serialization.safe_globals(_numpy_scalar_globals()):
        return _weights_only_load(path, map_location, mmap)


def _weights_only_load(path, map_location, mmap):
    try:
        if mmap:
            try:
                return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e) and "zip" not in str(e):
                    raise
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = next((line for line in lines if "Unsupported global" in line or "Unsupported class" in line), None)
        if detail is None:  # not refused for its content: not a (readable) pickle at all
            raise ValueError(f"Could not read {path!r} as a torch checkpoint ({lines[-1] if lines else type(e).__name__})") from e
        if pickle_allowed():
            _warn_unsafe(path)
            return torch.load(path, map_location=map_location, weights_only=False)
        raise _refuse(path, f"it is not a plain tensor checkpoint ({detail})") from None


# Globals a plain weights/index pickle may name: builtin containers and numpy arrays. None of
# them runs user-controlled code when called with pickled arguments.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("__builtin__", "set"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol-2 pickles of Python 3 write bytes
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f, path, **kwargs):
        super().__init__(f, **kwargs)
        self._path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "numpy" and name.endswith("Dtype") or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise _refuse(self._path, f"its pickle names '{module}.{name}', which is not a container or numpy array")

    def persistent_load(self, pid):
        raise _refuse(self._path, "its pickle uses persistent ids (not a plain pickle)")


def safe_pickle_load(path, encoding="latin1"):
    """Read a pickle of builtin containers, numbers, strings and numpy arrays, nothing else."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path, encoding=encoding).load()
    except UnsafeFileError:
        if pickle_allowed():
            _warn_unsafe(path)
            return pickle.loads(data, encoding=encoding)
        raise


class _ScriptObject:
    """Stands in for a TorchScript class instance: keeps its attributes, runs none of its code."""

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _TorchScriptUnpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix, path):
        super().__init__(f)
        self._zf, self._prefix, self._path = zf, prefix, path

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return _ScriptObject
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(torch._utils, name)
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        if (module, name) == ("collections", "OrderedDict"):
            return super().find_class(module, name)
        raise _refuse(self._path, f"its TorchScript data names '{module}.{name}'")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise _refuse(self._path, f"unknown persistent id {kind!r}")
        dtype = storage_type.dtype if not isinstance(storage_type, torch.dtype) else storage_type
        raw = self._zf.read(f"{self._prefix}/data/{key}")
        storage = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)


def _collect(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, _ScriptObject):
        state = obj.__dict__.get("_state", obj.__dict__)
        if isinstance(state, dict):
            for k, v in state.items():
                if isinstance(k, str) and not k.startswith("_"):
                    _collect(v, f"{prefix}.{k}" if prefix else k, out)


def read_torchscript_tensors(path) -> Dict[str, torch.Tensor]:
    """``{dotted attribute name: tensor}`` of a TorchScript archive, like ``jit.load(path).state_dict()``.

    Reads the archive's pickled module tree with an unpickler that builds tensors and plain
    attribute holders only; the archive's code is never compiled or run.
    """
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not names:
            raise ValueError(f"{path!r} is not a TorchScript archive (no data.pkl)")
        prefix = names[0].split("/")[0]
        root = _TorchScriptUnpickler(io.BytesIO(zf.read(names[0])), zf, prefix, path).load()
    out = {}
    _collect(root, "", out)
    return out


def _safe_detectron2_load_file(self, filename):
    """detectron2's ``DetectionCheckpointer._load_file`` without unpickling code."""
    if filename.endswith(".pkl"):
        data = safe_pickle_load(filename)
        if not isinstance(data, dict):
            raise ValueError(f"{filename!r} holds a {type(data).__name__}, expected a dict of weights")
        if "model" in data and "__author__" in data:
            return data
        if "blobs" in data:  # Caffe2 / Detectron1 model zoo
            data = data["blobs"]
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}
    if filename.endswith(".pyth"):
        data = safe_torch_load(filename)
        if "model_state" not in data:
            raise ValueError(f"Cannot load .pyth file {filename}; pycls checkpoints must contain 'model_state'.")
        state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
        return {"model": state, "__author__": "pycls", "matching_heuristics": True}
    return _original_load_file(self, filename)


def _safe_torch_load_method(self, f):
    return safe_torch_load(f)


_original_load_file = None


def install_safe_detectron2_loading():
    """Make detectron2's ``DetectionCheckpointer`` (and so ``DefaultPredictor``, the evaluation
    and training entry points) read weights through this module. Idempotent; done on ``import odise_ext``."""
    global _original_load_file
    from detectron2.checkpoint import DetectionCheckpointer

    if _original_load_file is None:
        _original_load_file = DetectionCheckpointer._load_file
        DetectionCheckpointer._load_file = _safe_detectron2_load_file
        DetectionCheckpointer._torch_load = _safe_torch_load_method
