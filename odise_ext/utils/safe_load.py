"""Reading weights and index files without executing code from them.

A Python pickle can run any code while it is read. Every file odise-ext reads goes through
PyTorch's maintained weights-only unpickler (``torch._weights_only_unpickler``), with the numpy
globals below allowed for the duration of the call only (``torch.serialization.safe_globals``):

* :func:`safe_torch_load` - ``torch.load(weights_only=True)`` (zip and legacy ``torch.save`` files);
* :func:`safe_pickle_load` - plain pickles (detectron2 ``.pkl`` model-zoo weights, dataset index
  files), rewritten into the opcodes that unpickler reads (``pickle_opcodes.py``) and read by it,
  every constructor bound to a wrapper that charges the memory it declares to a budget of
  ``max(ODISE_EXT_MAX_CHECKPOINT_EXPANSION (4) x the file size, 1 MiB)`` (``pickle_budget.py``);
* :func:`read_torchscript_tensors` - the tensors of a TorchScript archive (OpenAI CLIP ``.pt``),
  read from its pickled data by the same unpickler, without loading (or running) its code.

Allowed beyond torch's own tensors and containers (:data:`NUMPY_GLOBALS`): what detectron2
model-zoo ``.pkl`` files hold (numpy arrays: ``_reconstruct``, ``ndarray``, ``dtype`` and its
classes, protocol 5's ``_frombuffer``) and what mmcv's ``meta`` holds (numpy scalars and dtypes),
under both the ``numpy.core`` (numpy 1) and ``numpy._core`` (numpy 2) names. Names are matched
whole: ``numpy.dtypes.__builtins__.get`` is not ``numpy.dtypes.Float32DType``.

A file needing anything else is refused with :class:`UnsafeFileError`, naming the file and the
global (or opcode) refused. ``ODISE_EXT_ALLOW_PICKLE=1`` reads such files with full pickle, with
a warning: only for files you trust. A zip checkpoint whose members would decompress to more than
``max(ODISE_EXT_MAX_CHECKPOINT_EXPANSION (4) x its file size, 2 x the target model's bytes)`` is
refused before any member is read.
"""
import io
import logging
import os
import pickle
import re
import zipfile
from typing import Dict

import numpy as np
import torch
from torch import _weights_only_unpickler as wo

from .pickle_budget import BOUNDED_MODULE_PREFIX, PLAIN_ALLOWED, Budget, PickleBudgetError, bounded_plain_globals
from .pickle_opcodes import PickleOpcodeError, to_weights_only_opcodes

__all__ = [
    "ALLOW_PICKLE_ENV",
    "MAX_EXPANSION_ENV",
    "NUMPY_GLOBALS",
    "UnsafeFileError",
    "unsafe_file_error",
    "pickle_allowed",
    "check_zip_expansion",
    "safe_torch_load",
    "safe_pickle_load",
    "scan_pickle",
    "read_torchscript_tensors",
]

ALLOW_PICKLE_ENV = "ODISE_EXT_ALLOW_PICKLE"
MAX_EXPANSION_ENV = "ODISE_EXT_MAX_CHECKPOINT_EXPANSION"
_DEFAULT_EXPANSION = 4.0
_MODEL_MARGIN = 2.0
_PLAIN_SLACK = 1 << 20  # bytes any plain pickle may declare, however small the file

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
    return UnsafeFileError(f"Refusing to read {path!r}: {why}. Reading it would execute code stored in the file. {_CONVERT_HINT}")


def _numpy_globals():
    core = np._core
    dtype_classes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUV"}  # numpy.dtypes.*DType
    named = []
    for mod in ("numpy.core", "numpy._core"):  # the name a numpy 1 / numpy 2 pickle gives
        named += [(core.multiarray._reconstruct, f"{mod}.multiarray._reconstruct"),
                  (core.multiarray.scalar, f"{mod}.multiarray.scalar"),
                  (core.numeric._frombuffer, f"{mod}.numeric._frombuffer")]
    return [np.ndarray, np.dtype, *sorted(dtype_classes, key=str), *named]


NUMPY_GLOBALS = _numpy_globals()


def _refused_what(message: str) -> str:
    """The global / opcode a refusal from torch's unpickler names, in a few words."""
    for pattern in (r"GLOBAL (\S+) was not an allowed", r"unsupported GLOBAL (\S+)", r"(Unsupported operand \d+)",
                    r"(reduce for unrecognized function .*)", r"(Can only \w+ .*but got .*)", r"(persistent_load.*)"):
        m = re.search(pattern, message)
        if m:  # torch writes builtins.eval as "eval"; a plain pickle's names carry BOUNDED_MODULE_PREFIX
            what = m.group(1).replace(BOUNDED_MODULE_PREFIX, "")
            return what if "." in what or " " in what else f"builtins.{what}"
    return message.strip().splitlines()[-1] if message.strip() else "an unknown construct"


def _refuse_or_full_pickle(path, what, full_load):
    """Refuse ``path`` for ``what`` (a global or opcode), or read it with ``full_load`` if opted in."""
    if pickle_allowed():
        logging.getLogger(__name__).warning(
            f"{ALLOW_PICKLE_ENV} is set: reading {path!r} with full pickle although it names {what} (it may run code)")
        return full_load()
    raise unsafe_file_error(path, f"it names {what}, which is not a tensor, container or numpy array") from None


def _damaged(path, kind, e):
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    return ValueError(f"Could not read {path!r} as {kind}: damaged or truncated? ({size} bytes; "
                      f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''})")


def check_zip_expansion(path, model_bytes: int = 0) -> None:
    """Refuse a zip ``path`` whose members declare more bytes than
    ``max(expansion x file size, 2 x model_bytes)``, before any member is read."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as zf:
        declared = sum(info.file_size for info in zf.infolist())
    size = os.path.getsize(path)
    expansion = float(os.environ.get(MAX_EXPANSION_ENV, _DEFAULT_EXPANSION))
    limit = max(expansion * size, _MODEL_MARGIN * model_bytes)
    if declared > limit:
        raise ValueError(
            f"Refusing to read {path!r}: its zip members decompress to {declared} bytes, more than "
            f"{expansion:g} x its {size} bytes" + (f" and {_MODEL_MARGIN:g} x the model's {model_bytes} bytes" if model_bytes else "")
            + f" (a zip bomb?). For a file you trust, raise the factor with {MAX_EXPANSION_ENV}=N.")


def _starts_like_a_checkpoint(path) -> bool:
    """A zip archive (torch.save since 1.6) or a pickle with a protocol header (legacy torch.save)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def safe_torch_load(path, map_location="cpu", mmap: bool = False, model_bytes: int = 0):
    """``torch.load(path, weights_only=True)`` with :data:`NUMPY_GLOBALS` allowed for this call;
    a file that needs more is refused (or opted in). ``mmap``: memory-map a zip archive
    (torch.save's format since 1.6), so that tensors read their bytes from the file on demand
    instead of holding a second copy (legacy files load normally). ``model_bytes``: the size of
    the model the file is for (raises the zip expansion cap)."""
    path = os.fspath(path)
    check_zip_expansion(path, model_bytes)
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):
            if mmap and zipfile.is_zipfile(path):
                return torch.load(path, map_location=map_location, weights_only=True, mmap=True)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not _starts_like_a_checkpoint(path):  # neither a zip archive nor a pickle: not a refusal
            raise _damaged(path, "a torch checkpoint", e) from None
        return _refuse_or_full_pickle(
            path, _refused_what(str(e)), lambda: torch.load(path, map_location=map_location, weights_only=False))
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _damaged(path, "a torch checkpoint", e) from None


def _plain_stream(path, data, encoding):
    try:
        return to_weights_only_opcodes(data, encoding, BOUNDED_MODULE_PREFIX)
    except PickleOpcodeError as e:
        return _refuse_or_full_pickle(path, str(e), lambda: None)
    except ValueError as e:
        raise _damaged(path, "a pickle", e) from None


def scan_pickle(path, encoding="latin1") -> None:
    """Refuse (``UnsafeFileError``) a plain pickle that names anything but tensors, containers and
    numpy arrays, building nothing: the check made before a file is handed to a reader outside
    this project (detectron2's ``DefaultPredictor`` reads ``.pkl`` weights with full pickle)."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"PK\x03\x04"):
        return  # a zip torch.save file: detectron2 reads it with torch.load (weights_only)
    result = _plain_stream(path, data, encoding)
    if result is None:
        return  # opted in
    names = result[1] - PLAIN_ALLOWED
    if names:
        _refuse_or_full_pickle(path, f"GLOBAL {sorted(names)[0]}", lambda: None)


def _plain_budget(path, size: int) -> Budget:
    """What a plain pickle of ``size`` bytes may declare: ``max(expansion x size, 1 MiB)``."""
    expansion = float(os.environ.get(MAX_EXPANSION_ENV, _DEFAULT_EXPANSION))

    limit = max(expansion * size, _PLAIN_SLACK)

    def describe(what, nbytes):
        return (f"Refusing to read {path!r}: {what} declares {nbytes} bytes, which brings what the pickle "
                f"allocates past {limit:.0f} bytes (max({expansion:g} x its {size} bytes, {_PLAIN_SLACK} bytes)): "
                f"its data cannot all be in the file (a crafted or damaged pickle?). For a file you trust, "
                f"raise the factor with {MAX_EXPANSION_ENV}=N.")

    return Budget(limit, describe)


def safe_pickle_load(path, encoding="latin1"):
    """Read a pickle of builtin containers, numbers, strings and numpy arrays, nothing else."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()

    def full_load():
        return pickle.loads(data, encoding=encoding)

    result = _plain_stream(path, data, encoding)
    if result is None:
        return full_load()
    budget = _plain_budget(path, len(data))
    try:
        with torch.serialization.safe_globals(bounded_plain_globals(budget)):
            return budget.finish(wo.Unpickler(io.BytesIO(result[0]), encoding=encoding).load())
    except PickleBudgetError:
        raise  # names the file and the declared size
    except pickle.UnpicklingError as e:
        return _refuse_or_full_pickle(path, _refused_what(str(e)), full_load)
    except (TypeError, ValueError, KeyError, IndexError, EOFError, AttributeError) as e:
        raise _damaged(path, "a pickle", e) from None


class _ScriptObject:
    """Stands in for a TorchScript class instance: keeps its attributes, runs none of its code."""

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _TorchScriptUnpickler(wo.Unpickler):
    """torch's weights-only unpickler whose storages come from the archive's ``data/`` members."""

    def __init__(self, f, zf, prefix):
        super().__init__(f, encoding="utf-8")
        self._zf, self._prefix = zf, prefix

    def persistent_load(self, pid):
        _kind, storage_type, key, _location, _numel = pid
        dtype = storage_type if isinstance(storage_type, torch.dtype) else storage_type.dtype
        raw = self._zf.read(f"{self._prefix}/data/{key}")
        storage = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=storage, dtype=dtype, _internal=True)


def _collect(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, _ScriptObject):
        state = obj.__dict__.get("_state", obj.__dict__)
        if isinstance(state, dict):
            for k, v in state.items():
                if isinstance(k, str) and not k.startswith("_"):
                    _collect(v, f"{prefix}.{k}" if prefix else k, out)


def read_torchscript_tensors(path, model_bytes: int = 0) -> Dict[str, torch.Tensor]:
    """``{dotted attribute name: tensor}`` of a TorchScript archive, like ``jit.load(path).state_dict()``.

    Reads the archive's pickled module tree with torch's weights-only unpickler, where every
    ``__torch__.*`` class is an inert attribute holder; the archive's code is never compiled or run.
    """
    path = os.fspath(path)
    check_zip_expansion(path, model_bytes)
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not names:
            raise ValueError(f"{path!r} is not a TorchScript archive (no data.pkl)")
        prefix = names[0].split("/")[0]
        data = zf.read(names[0])
        try:
            script_classes = [(_ScriptObject, g) for g in wo.get_globals_in_pkl(io.BytesIO(data)) if g.startswith("__torch__.")]
            with torch.serialization.safe_globals(script_classes):
                root = _TorchScriptUnpickler(io.BytesIO(data), zf, prefix).load()
        except pickle.UnpicklingError as e:
            return _refuse_or_full_pickle(path, f"(in its TorchScript data) {_refused_what(str(e))}",
                                          lambda: dict(torch.jit.load(path, map_location="cpu").state_dict()))
    out = {}
    _collect(root, "", out)
    return out
